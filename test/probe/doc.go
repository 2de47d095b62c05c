// Command probe runs as an FLJob's process and reports what that process
// sees: its identity, its workspace root and mounts, which paths refuse
// writes and why, its capabilities, and what it can reach.
//
// Its subcommands also give tests a controllable job process: write files,
// write NVFlare's _process_rc.txt, sleep, serve TCP and exit with a chosen
// code, alone or chained in one invocation with "probe run".
//
// Usage:
//
//	probe inspect [--out FILE] [--root DIR] [--job-dir DIR] [--check-dir DIR]...
//	              [--mkdir NAME] [--connect HOST:PORT] [--fill-root BYTES]
//	probe write --file PATH --data STR
//	probe sleep [--ignore-term] DURATION
//	probe exit CODE
//	probe serve --port N [--reply TEXT] [--count N]
//	probe run [inspect flags] [--inspect] [--inspect-out FILE]
//	          [--write PATH=DATA]... [--rc-file PATH] [--rc N]
//	          [--sleep DURATION] [--ignore-term] [--exit N]
//
// inspect prints one JSON object, a [report.Report], on stdout. The
// package github.com/fljob-dev/fljob/test/probe/report decodes it.
package main
