// Package docker runs FLJob workloads as containers of a Docker Engine. It
// implements backends.Backend, backends.Watcher and backends.LogReader by
// translating the isolation model (backends.Workload) into a container and
// reading the container back into a backends.Observation. It is the only
// package that imports the moby client and API modules.
//
// # Translation
//
// One attempt is one container named fljob-<namespace>.<name>-<attempt>
// (namespaces and FLJob names hold no '.', so the name is unambiguous),
// labelled with the model's labels. Containers are found by those labels,
// never from memory, so a restarted controller adopts what runs.
//
// The workspace root is a tmpfs of the model's mode (1777) and size. It is
// not a tmpfs mount of the container but a per-attempt Docker volume of the
// local driver whose options mount a tmpfs (type=tmpfs, o=size=...,mode=...).
// The reason is measured on Docker 20.10 with runc 1.1.5: with the working
// directory inside a tmpfs mount, the engine first creates that directory
// in the image's file system (mode 0755) and runc then gives the tmpfs the
// mode of that directory, so the root came up 0755 and a non-root job could
// not create snapshot-storage/ in it. A volume is bind-mounted into the
// container and keeps the mode the kernel gave the tmpfs. The volume carries
// the attempt's labels and is removed with the workload.
//
// startup/ and local/ are read-only binds and the job directory a
// read-write bind. From API 1.44 the backend asks for recursive read-only
// binds and the engine refuses to start the container when it cannot
// provide them. Older engines make a bind read-only only at its top, and
// file systems mounted below it on the host would stay writable: there the
// backend reads its own mount table (it runs on the Docker host) and binds
// each file system mounted below startup/ or local/ read-only on its own
// (see readOnlySubmounts). File systems mounted there after the container
// started do not reach it. See Backend.Features.
//
// A host-path source is prepared on the host (the controller runs on the
// Docker host): startup/ and local/ must exist, and the job directory is
// created when missing and handed to the job's uid:gid when that user
// cannot write it. A named-volume source is mounted with VolumeOptions.Subpath
// where the engine speaks API 1.45; older engines get binds of the
// volume's directories, which only works for plain volumes of the local
// driver.
//
// The process runs as the model's uid:gid with every capability dropped,
// no-new-privileges, the engine's default seccomp profile, USER and HOME
// from the model, and never sees the engine's socket. Variables taken from Secrets are resolved through
// Options.Secrets at creation and are visible in the container's
// configuration to anyone who can inspect it.
//
// Every container joins one user-defined bridge network (Options.Network)
// with the FLJob's name as its alias: that name is how other jobs reach it,
// the Docker twin of the Kubernetes backend's Service. Aliases are not
// namespaced, so two FLJobs of one name in different namespaces cannot run
// at once on one engine: the second waits with reason HostnameInUse.
//
// GPUs are device requests with explicit device ids taken from
// Options.GPUs. The ids a container holds are recorded in a label, and the
// ids in use are derived from the containers that exist and have not
// exited, so an allocation survives a restart and two unfinished containers
// never share a GPU.
package docker
