"""Write flowers.csv: a small synthetic data set (150 rows, 4 features, 3 species).

The measurements are drawn from one normal distribution per species (seeded,
so the file is reproducible); they only look like the classic flower data.
Run: python make_data.py
"""

import csv
from pathlib import Path

import numpy as np

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
# Per species: mean and standard deviation of each feature.
SPECIES = {
    "setosa": ([5.0, 3.4, 1.5, 0.25], [0.35, 0.38, 0.17, 0.1]),
    "versicolor": ([5.9, 2.8, 4.3, 1.3], [0.5, 0.31, 0.47, 0.2]),
    "virginica": ([6.6, 3.0, 5.5, 2.0], [0.63, 0.32, 0.55, 0.27]),
}


def main() -> None:
    rng = np.random.default_rng(2024)
    rows = []
    for species, (mean, std) in SPECIES.items():
        values = np.clip(rng.normal(mean, std, size=(50, 4)), 0.1, None)
        rows += [[*(f"{v:.1f}" for v in row), species] for row in values]
    with open(Path(__file__).with_name("flowers.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
