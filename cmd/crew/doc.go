// Command crew runs any program, in any language, as a careful queue
// worker, and maps lines of input through a command in parallel. crew work
// gives each message's command a lease that is extended while it runs,
// retries with backoff, dead letters and a drain on SIGTERM that lets
// running commands finish; crew run is xargs -P with whole, ordered output,
// retries, halt policies and a resumable job log; crew ui shows a queue
// store on a web page.
//
// # Commands
//
//	crew enqueue [--queue URL] [--delay D] [--priority N] [--attr KEY=VALUE]... [BODY...]
//	crew work    [--queue URL] [-c|-j N] [--lease D] [--max-attempts N] [--timeout D]
//	             [--retry-delay D] [--permanent-exit CODE,...] [--drain D] [--kill-after D]
//	             [--rate N/s|N/m|N/h] [--burst N] [--key ATTR] [--per-key N]
//	             [--health ADDR] [--metrics ADDR] [--exit-when-empty] [--status-every D]
//	             (-- CMD [ARGS...] | --post URL)
//	crew stats   [--queue URL] [--json]
//	crew dead    list [--json] | redrive (--all | ID...) | purge      [--queue URL]
//	crew run     [-j|-c N] [--timeout D] [--kill-after D] [--retries N] [--retry-delay D]
//	             [--halt WHEN,fail=N[%] | --halt-on-error] [--line-buffer] [-k] [--tag]
//	             [--joblog FILE [--resume | --resume-failed]] [--progress auto|always|never]
//	             -- CMD [ARGS...]
//	crew ui      [--queue URL] [--addr ADDR] [--read-only]
//
// Every command explains itself and its flags with --help.
//
// # Queues
//
// A queue is a URL, from --queue or $CREW_QUEUE, by default
// sqlite://crew.db, the queue "default" of an SQLite file in the working
// directory. Each scheme is one kind of store:
//
//	sqlite://PATH?queue=NAME                 a file on this machine
//	postgres://USER@HOST:PORT/DB?queue=NAME  a PostgreSQL database (or postgresql://)
//	sqs://HOST/ACCOUNT/QUEUE                 an Amazon SQS queue, by its URL
//	sqs+http://HOST:PORT/ACCOUNT/QUEUE       a local SQS endpoint, over plain HTTP
//	nats://HOST:PORT?queue=NAME              a NATS JetStream server
//
// Besides queue, sqlite takes synchronous, busy_timeout and poll_interval;
// postgres takes schema, poll_interval and connection parameters such as
// sslmode, and the password from the URL, $PGPASSWORD or ~/.pgpass; sqs
// takes region (else the AWS configuration's, such as $AWS_REGION, or the
// host name's), dlq and wait, and
// credentials from the standard AWS chain; nats takes stream, consumer and
// subject (to use a stream that exists), ack_wait, creds, nkey, tls_ca,
// tls_cert and tls_key.
//
// A URL is read strictly, whatever its scheme: an unknown or repeated
// parameter, a malformed query or a '#' is a usage error that names the bad
// part, never a silent fall back to another queue or file.
//
// crew enqueue and a long-running crew work create what they need on first
// use: the SQLite file, the PostgreSQL schema, the JetStream stream and
// consumer. crew stats, crew dead and crew work --exit-when-empty create
// nothing: a store that does not exist is an error that names it. crew ui
// creates only the default sqlite://crew.db. crew never creates or deletes
// an SQS queue. Priorities are honoured by SQLite and PostgreSQL; SQS
// ignores them and JetStream refuses them.
//
// # crew enqueue
//
// enqueue adds one message per BODY, or per line of standard input, and
// prints their IDs. Each --attr KEY=VALUE gives every message an
// attribute. When $TRACEPARENT (and $TRACESTATE) hold a W3C trace context,
// each message carries it as its traceparent and tracestate attributes, the
// names that the module github.com/crewgo/crew/otel uses.
//
// # crew work
//
// work runs CMD once per message, up to -c at once (-j is the same flag),
// directly rather than through a shell. The body is CMD's standard input;
// its environment holds CREW_MESSAGE_ID, CREW_ATTEMPT,
// CREW_FIRST_RECEIVED_AT (when the message was first received, the same on
// every delivery, RFC 3339 in UTC to the millisecond; empty when the queue
// cannot tell), one CREW_ATTR_<NAME> per attribute (the name upper-cased,
// other characters than letters, digits and _ made _) and the message's
// TRACEPARENT and TRACESTATE. With --post URL, each body is POSTed to URL
// instead, with the headers X-Crew-Message-Id, X-Crew-Attempt,
// X-Crew-First-Received-At, X-Crew-Attr-<Name>, the same under the names
// of Elastic Beanstalk's worker daemon (X-Aws-Sqsd-Msgid,
// X-Aws-Sqsd-Receive-Count, X-Aws-Sqsd-First-Received-At,
// X-Aws-Sqsd-Attr-<Name>) and the W3C traceparent and tracestate; the
// first-received headers are left out when the queue cannot tell. Only the redirects that repeat the request, method and body alike
// (307, 308) are followed; any other 3xx fails the message.
//
// Exit status 0 (or a 2xx response) acknowledges the message. A status
// listed by --permanent-exit (none by default; 65, EX_DATAERR, is
// customary) makes it a dead letter at once. Anything else retries it after
// a backoff from --retry-delay, doubling up to 5 minutes, until
// --max-attempts deliveries; every delivery counts, even one whose worker
// was killed. The lease, at least 1s, is extended every third of --lease
// while CMD runs, so CMD may run far longer; --timeout bounds it.
//
// Delivery is at least once: a message is deleted only when its
// acknowledgement commits, so a command can run twice for one message, when
// crew is killed after CMD finished but before the ack committed, or when a
// lease is lost and another worker receives the message. CREW_MESSAGE_ID is
// the same on every delivery: a command that records the IDs it has done,
// with its work, can skip a repeat.
//
// --rate 50/s (or /m, /h) starts at most that many commands per second,
// evenly spaced, or in bursts of up to --burst; a message is received only
// once its command may start, so no lease runs out while it waits. --key
// tenant --per-key 2 runs at most 2 commands at once per value of the
// attribute tenant, while the other slots serve other values; a message of
// a busy value waits, leased, only if it should start soon, and is
// otherwise given back to the queue for a while, which counts in
// CREW_ATTEMPT but not against --max-attempts.
//
// --health ADDR serves /livez and /readyz (503 from the first signal on).
// --metrics ADDR serves Prometheus metrics at /metrics (on the health
// server when both name one address): crew_queue_messages_total by outcome,
// crew_queue_in_flight, crew_queue_handler_seconds and crew_queue_depth by
// state, the names of the module github.com/crewgo/crew/metrics/prometheus.
// Logs go to standard error: one line per outcome, and a status line every
// --status-every. --exit-when-empty exits once crew holds no message and
// the queue has none ready, leased or delayed.
//
// # crew stats and crew dead
//
// stats counts the messages of each queue of the store by state: ready,
// leased, delayed and dead (on SQS, its approximate counts). dead list
// shows the dead letters with their attempts, time and reason; with --json,
// each body is given byte for byte in body_base64, and also as body when it
// is valid UTF-8. dead redrive makes the named dead letters, or all of
// them, ready again for a fresh round of attempts; dead purge deletes them.
//
// # crew run
//
// run starts one job per line of standard input, at most -j at once (-c is
// the same flag; by default, the number of CPUs): CMD with every "{}"
// replaced by the line, or the line appended when no argument holds "{}".
// Each job's output is printed whole when it ends, never mixed with
// another's; --line-buffer prints whole lines as they come instead,
// -k (--keep-order) prints in input order, --tag prefixes each line with
// its input. A failed job runs again up to --retries more times, after a
// backoff from --retry-delay. --halt soon,fail=N starts no new job after N
// failures, now,fail=N also stops the running ones, and fail=N% counts a
// percentage of the jobs (GNU parallel's meanings). A progress bar with an
// ETA is drawn on standard error when it is a terminal.
//
// --joblog records every finished job in GNU parallel's format; --resume
// then skips the jobs it records as done, and --resume-failed runs only
// those it records as failed. A run holds its job log locked: a second run
// on the same log fails at once rather than run the same jobs twice.
//
// # crew ui
//
// ui serves a web page, on 127.0.0.1:8080 unless --addr says otherwise,
// that shows every queue of the store --queue names, on every backend: its
// counts, refreshed live, charts of its depth and of messages completed per
// second, and its dead letters, which buttons redrive or purge. The page is
// part of the binary and loads nothing from elsewhere; it accepts changes
// only from its own page (same origin, with its token), and none with
// --read-only.
//
// # Stopping and children
//
// Commands and jobs run in process groups of their own, so that a
// terminal's Ctrl-C reaches crew alone and crew decides how they stop. For
// crew work, the first SIGINT or SIGTERM stops receiving and lets running
// commands finish; at --drain (default 25s, inside Kubernetes' 30-second
// grace period) those still running get SIGTERM to their process group,
// SIGKILL --kill-after (10s) later, and their messages are released for
// another delivery. A second signal does that at once. For crew run, the
// first signal stops starting jobs and the second stops the running ones
// the same way. For crew ui, the first signal stops serving once the
// requests in progress end, the second at once.
//
// Children never outlive crew. crew work and crew run start a small
// guardian process, crew itself under a hidden argument, that holds one end
// of a pipe whose other end only crew holds. However crew ends, a crash or
// a SIGKILL included, the system closes its end; the guardian then sends
// SIGTERM to the process group of every command still running, and SIGKILL
// a second later. This relies only on pipes and process groups, so it works
// on Linux, macOS and the BSDs alike; on Linux, each command also gets
// SIGTERM as its parent-death signal, which covers the instant between its
// start and the guardian's hearing of it. What a command leaves running in
// the background after it exits is its own.
//
// # Exit status
//
//	0  success: every job or message succeeded, or a drain completed
//	1  a job failed or the run halted or was stopped; a message was
//	   dead-lettered, released by a drain or lost its lease; another run
//	   holds the job log; or an operation failed (a store that does not
//	   exist, a queue file that is not a database, a server out of reach)
//	2  a wrong command line: an unknown command or flag, a bad queue URL,
//	   a missing CMD, a bad number, a lease under 1s
package main
