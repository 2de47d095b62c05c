// Command fedavg is a tiny federated-averaging job used to exercise FLJob
// deployments end to end: one server process and several client processes
// that find the server by host name, as NVFlare's server and client jobs do.
//
// Each round the server sends the global weights of a linear regression
// model; every client takes gradient steps on synthetic data seeded by its
// site name and returns its weights and sample count; the server averages
// them weighted by samples. Messages are JSON lines over TCP.
//
// Usage:
//
//	fedavg server [--port 8002] [--clients 2] [--rounds 3]
//	              [--workspace /var/tmp/nvflare/workspace] [--job-dir DIR]
//	fedavg client --server HOST:PORT --site NAME [--job-dir DIR]
//	              [--connect-timeout 60s]
//
// The server creates snapshot-storage/ and jobs-storage/ in the workspace
// root and checkpoints every round there; it fails if it cannot. Each
// process writes its results into its job directory (the working directory
// unless --job-dir says otherwise): global_model.json for the server,
// local_metrics.json for a client, and _process_rc.txt holding "0" on
// success, "1" on failure or "9" when a signal aborted it. The exit code
// matches.
package main
