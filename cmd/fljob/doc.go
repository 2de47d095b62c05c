// Command fljob runs FLJobs: on one host with Docker and no Kubernetes, or
// as the operator of a cluster. Its commands feel like kubectl's:
//
//	fljob run -f DIR       apply, run with an embedded controller, stream
//	                       the logs, wait, summarize; exit 1 if a job failed
//	fljob apply -f FILE    create or update FLJobs and Secrets
//	fljob get [NAME]       list FLJobs (-o wide|yaml|json|name)
//	fljob describe NAME    spec, status, conditions and recent events
//	fljob logs NAME [-f]   the output of the latest attempt
//	fljob delete NAME      stop and remove an FLJob's workload, then it
//	fljob wait NAME --for=condition=Complete --timeout=5m
//	fljob operator         the long-running controller
//
// On one host FLJobs live in a local store (package localstore) under
// --state-dir, $FLJOB_STATE_DIR or $XDG_STATE_HOME/fljob, and run as
// Docker containers of the engine that DOCKER_HOST names. apply, get,
// describe, delete and wait work whether or not a controller runs; run
// embeds one unless `fljob operator` already runs on the same store.
package main
