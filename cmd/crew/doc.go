// Command crew runs any program as a graceful queue worker, and maps lines
// of input through a command in parallel, with crew's guarantees: bounded
// concurrency, leases that are extended while work runs, retries with
// backoff, dead letters, and a stop that lets running work finish.
//
// # Commands
//
//	crew enqueue [--queue URL] [--delay D] [--priority N] [--attr KEY=VALUE]... [BODY...]
//	crew work    [--queue URL] [-c N] [--lease D] [--max-attempts N] [--timeout D]
//	             [--drain D] [--kill-after D] [--retry-delay D] [--health ADDR]
//	             [--rate N/s|N/m|N/h] [--burst N] [--key ATTR] [--per-key N]
//	             [--permanent-exit CODE] [--exit-when-empty] [--status-every D]
//	             (-- CMD [ARGS...] | --post URL)
//	crew stats   [--queue URL] [--json]
//	crew dead    list [--json] | redrive (--all | ID...) | purge
//	crew run     [-j N] [--timeout D] [--kill-after D] [--retries N] [--joblog FILE]
//	             [--resume] [--halt-on-error] [--progress auto|always|never] -- CMD [ARGS...]
//
// enqueue adds one message per BODY, or per line of standard input, and
// prints their IDs. work runs CMD once per message, the body on its
// standard input and CREW_MESSAGE_ID and CREW_ATTEMPT in its environment;
// exit status 0 acknowledges the message, anything else retries it with
// backoff until --max-attempts deliveries, after which it is a dead letter.
// Every delivery counts as an attempt, including one whose worker was
// killed. stats counts messages by state; dead lists, redrives and purges
// dead letters (dead list --json gives each body byte for byte, in
// body_base64). run is xargs -P with a resumable job log in GNU parallel's
// format, locked while a run uses it.
//
// # Limits
//
// crew work --rate 50/s (or /m, /h) starts at most that many commands a
// second, evenly spaced, or in bursts of up to --burst; a message is
// received only when its command may start, so no lease runs out while it
// waits. --key tenant --per-key 2 runs at most 2 commands at once for the
// messages of one tenant (an attribute given by crew enqueue --attr
// tenant=...), while the other -c slots serve other tenants: a message of
// a busy tenant waits, leased, only if it should start within about one
// command's run, and is otherwise given back to the queue for a while.
//
// # Telling crew what a failure means
//
// A command that exits 0 is done. One that exits with a status listed by
// --permanent-exit (none by default; 65, EX_DATAERR, is customary for
// input that can never be processed) sends its message to the dead
// letters at once. Any other failure is retried later, with backoff, until
// --max-attempts. Each message's attributes reach the command as
// CREW_ATTR_<NAME>; with --post, the request carries X-Crew-Message-Id,
// X-Crew-Attempt and X-Crew-Attr-<Name>, and the same under the names
// Elastic Beanstalk's worker daemon sends (X-Aws-Sqsd-Msgid,
// X-Aws-Sqsd-Receive-Count, X-Aws-Sqsd-Attr-<Name>).
//
// # Delivery
//
// Delivery is at least once: a message is deleted only when its
// acknowledgement commits, so a command can run twice for one message, when
// crew is killed after the command finished but before the ack committed,
// or when a lease is lost and another worker receives the message. A
// message keeps its ID, CREW_MESSAGE_ID, on every delivery: a command that
// records the IDs it has done, with its work, can skip a repeat. --post
// follows only the redirects that repeat the POST with its body (307, 308);
// another 3xx fails the message. --lease is at least 1s.
//
// # Queues
//
// A queue is a URL, from --queue or $CREW_QUEUE, by default
// sqlite://crew.db: queue "default" of an SQLite file in the working
// directory, created on first use. sqlite://path.db?queue=NAME picks
// another queue; synchronous, busy_timeout and poll_interval tune the
// database. Other backends plug in through the scheme registry of package
// internal/backend.
//
// # Stopping and children
//
// Children run in process groups of their own, so that a terminal's Ctrl-C
// (SIGINT to the foreground group) reaches crew alone and crew decides how
// they stop. For crew work, the first SIGINT or SIGTERM stops receiving
// and lets running commands finish; at --drain (default 25s, inside
// Kubernetes' 30-second grace period) the commands still running get
// SIGTERM to their process group, SIGKILL --kill-after (10s) later, and
// their messages are released for another delivery. A second signal does
// that at once. For crew run, the first signal stops starting jobs and the
// second stops the running ones the same way.
//
// Children never outlive crew. crew work and crew run start a small
// guardian process, crew itself under a hidden argument, that holds one end
// of a pipe whose other end only crew holds. However crew ends, a crash or
// a SIGKILL included, the system closes its end; the guardian then sends
// SIGTERM to the process group of every command still running, and SIGKILL
// a second later to the groups still alive. This relies only on pipes and
// process groups, so it works on Linux, macOS and the BSDs alike; on Linux,
// each command also gets SIGTERM as its parent-death signal, which covers
// the instant between its start and the guardian's hearing of it. A
// command's group is forgotten once the command has exited: what it leaves
// running in the background is its own.
//
// # Exit status
//
//	0  success: every job or message succeeded, or a drain completed
//	1  a job failed; a message was dead-lettered, released by a drain or
//	   lost its lease; another run holds the job log; or an operation failed
//	   (such as a queue file that is not a database)
//	2  a wrong command line: an unknown command, flag or queue scheme, a
//	   missing CMD, a bad number, a lease under 1s
package main
