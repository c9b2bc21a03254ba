"""`unitserve graph`: a SeldonDeployment's inference graph served by one process tree.

The layer sits beside the transports, above the models: it reads the graph (`spec`),
finds each node's class or remote endpoint (`nodes`), walks the graph per request
(`walk`) and makes the walk one served model (`serving.GraphModel`), which the runtime
serves with the same supervisor and worker lifecycle as `unitserve serve`
(``unitserve.runtime.graph_server``). Local nodes run in the graph's workers as engines
called on decoded messages, so a request crosses the wire once on the way in and once
on the way out, however many local nodes it visits.
"""
