"""`unitserve graph`: a SeldonDeployment's inference graph served by one process tree.

The layer sits above `runtime`: it reads the graph (`spec`), finds each node's class or
remote endpoint (`nodes`), walks the graph per request (`walk`) and plugs the walk into
the same supervisor and worker lifecycle as `unitserve serve` (`serving`). Local nodes
run in the graph's workers as engines called on decoded messages, so a request crosses
the wire once on the way in and once on the way out, however many local nodes it visits.
"""
