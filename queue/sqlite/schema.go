package sqlite

import "strconv"

// Where messages live (migrate.go creates the tables).
//
// A ready message, leased or not, is a row of the ready table, whose key
// (queue, priority DESC, id) is the order in which Receive takes messages:
// a Receive reads its queue's rows in key order and takes those whose
// lease has run out (lease_until <= now), with no index but the table
// itself. Leasing a message changes nothing but its own row, and an Ack
// deletes just that row. IDs are unique in the file, so the key's id alone
// tells messages of one queue and priority apart.
//
// Messages that wait (a delayed publish, a Nack with a delay) and dead
// letters are rows of the messages table, in stateDelayed until ready_at
// (a Receive then moves them to ready), or in stateDead until redriven or
// purged. Keeping delayed messages out of ready means that a Receive never
// reads past messages scheduled for later.
const (
	stateDelayed = 1
	stateDead    = 2
)

// What lease_until and receipt hold while a message is not leased, as SQL
// literals. notLeased (2^40) is a moment long past, in 2004, so such a
// message is ready; noReceipt (-2^62) is negative, and receipts never are.
// Both take as many bytes in a row as the values a lease writes (a time in
// Unix milliseconds, a receipt of at least 2^62), so that leasing or
// releasing a message rewrites its row in place: SQLite overwrites a row
// whose size does not change, but deletes and inserts one whose size does,
// which costs a lease several times more.
const (
	notLeased = "1099511627776"
	noReceipt = "-4611686018427387904"
)

// notReceived is what first_received holds for a message that was never
// received (or was received before the file had the column), as a
// number: the default that migration 4 gave the column. Like notLeased,
// it is as wide as a time, so that the first lease, which sets the
// column, rewrites the row in place.
const notReceived = 1 << 40

// The statements. Parameters are numbered so that each can be read next to
// its query; ?1 is the queue's row ID unless said otherwise. The set of
// statement texts is fixed, which keeps each connection's cache of
// prepared statements small.
const (
	// ?1 queue name.
	sqlCreateQueue = `INSERT INTO queues (name) VALUES (?1) ON CONFLICT (name) DO NOTHING`
	sqlQueueID     = `SELECT id FROM queues WHERE name = ?1`

	// IDs come from the messages table's AUTOINCREMENT counter, so that
	// they are unique across both tables, even with a process of version
	// 1 still inserting into messages. ?1 how many IDs to take: returns
	// the last of them.
	sqlNextIDs = `UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'messages' RETURNING seq`

	// ?2 priority, ?3 id, ?4 body, ?5 attributes, ?6 now.
	sqlPublishReady = `INSERT INTO ready (queue, priority, id, lease_until, receipt, attempts, body, attributes, created_at)
		VALUES (?1, ?2, ?3, ` + notLeased + `, ` + noReceipt + `, 0, ?4, ?5, ?6)`
	// ?2 priority, ?3 id, ?4 body, ?5 attributes, ?6 now, ?7 ready_at.
	sqlPublishDelayed = `INSERT INTO messages (queue, priority, id, body, attributes, created_at, ready_at, state)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)`

	// ?2 now: sqlPromote moves the delayed messages whose time has come
	// to ready, then sqlPromoted deletes them from messages. Ready
	// messages that a process of version 1 still running on a migrated
	// file published or released (state 0) go with them, once no lease
	// holds them.
	sqlDue     = `queue = ?1 AND (state = 1 AND ready_at <= ?2 OR state = 0 AND lease_until <= ?2)`
	sqlPromote = `INSERT INTO ready (queue, priority, id, lease_until, receipt, attempts, body, attributes, created_at, first_received)
		SELECT queue, priority, id, ` + notLeased + `, ` + noReceipt + `, attempts, body, attributes, created_at, first_received
		FROM messages WHERE ` + sqlDue
	sqlPromoted = `DELETE FROM messages WHERE ` + sqlDue

	// ?2 now: the messages Receive may lease, in the order it takes them.
	// Receive stops reading once it has enough, then leases them with
	// sqlMarkLeased.
	sqlReady = `SELECT priority, id, attempts, body, attributes, first_received FROM ready
		WHERE queue = ?1 AND lease_until <= ?2 ORDER BY priority DESC, id`
	// When the next delayed message becomes ready, and when the next
	// lease ends (nothing is ready when these run); ?2 now.
	sqlNextDelayed  = `SELECT min(ready_at) FROM messages WHERE queue = ?1 AND state = 1`
	sqlNextLeaseEnd = `SELECT min(lease_until) FROM ready WHERE queue = ?1 AND lease_until > ?2`

	// Settling statements: ?2 priority and ?3 id are the message's key,
	// ?4 the receipt that fences it. Ack:
	sqlAck = `DELETE FROM ready WHERE queue = ?1 AND priority = ?2 AND id = ?3 AND receipt = ?4`
	// Nack without a delay:
	sqlRelease = `UPDATE ready SET lease_until = ` + notLeased + `, receipt = ` + noReceipt + `
		WHERE queue = ?1 AND priority = ?2 AND id = ?3 AND receipt = ?4`
	// Extend: ?5 lease end.
	sqlExtend = `UPDATE ready SET lease_until = ?5
		WHERE queue = ?1 AND priority = ?2 AND id = ?3 AND receipt = ?4`
	// Nack with a delay, and DeadLetter: copy the message to messages,
	// then sqlLeaveReady deletes it from ready. ?5 state, ?6 ready_at,
	// ?7 dead_reason.
	sqlSetAside = `INSERT INTO messages (id, queue, priority, state, ready_at, dead_reason, attempts, body, attributes, created_at, first_received)
		SELECT id, queue, priority, ?5, ?6, ?7, attempts, body, attributes, created_at, first_received FROM ready
		WHERE queue = ?1 AND priority = ?2 AND id = ?3 AND receipt = ?4`
	sqlLeaveReady = `DELETE FROM ready WHERE queue = ?1 AND priority = ?2 AND id = ?3`

	// Redrive: the queue's dead letters, or with sqlOneID the one whose ID
	// is ?2, back to ready with no attempts, and so never received.
	sqlRedrive = `INSERT INTO ready (queue, priority, id, lease_until, receipt, attempts, body, attributes, created_at)
		SELECT queue, priority, id, ` + notLeased + `, ` + noReceipt + `, 0, body, attributes, created_at FROM messages
		WHERE queue = ?1 AND state = 2`
	sqlRedriven = `DELETE FROM messages WHERE queue = ?1 AND state = 2`
	sqlOneID    = ` AND id = ?2`
	sqlPurge    = `DELETE FROM messages WHERE queue = ?1 AND state = 2`

	// Readers' statements. ?1 now.
	sqlStats = `SELECT
		(SELECT count(*) FROM ready WHERE queue = q.id AND lease_until <= ?1),
		(SELECT count(*) FROM ready WHERE queue = q.id AND lease_until > ?1),
		(SELECT count(*) FROM messages WHERE queue = q.id AND state = 1 AND ready_at > ?1),
		(SELECT count(*) FROM messages WHERE queue = q.id AND (state = 1 AND ready_at <= ?1 OR state = 0 AND lease_until <= ?1)),
		(SELECT count(*) FROM messages WHERE queue = q.id AND state = 0 AND lease_until > ?1),
		(SELECT count(*) FROM messages WHERE queue = q.id AND state = 2)
		FROM queues q WHERE q.name = ?2`
	// One index probe per queue, however many messages each holds.
	sqlQueues = `SELECT name FROM queues q
		WHERE EXISTS (SELECT 1 FROM ready WHERE queue = q.id) OR EXISTS (SELECT 1 FROM messages WHERE queue = q.id)
		ORDER BY name`
	// ?1 queue name.
	sqlDead = `SELECT m.id, body, attributes, attempts, dead_reason, ready_at, first_received FROM messages m, queues q
		WHERE q.name = ?1 AND m.queue = q.id AND state = 2 ORDER BY ready_at, m.id`
)

// sqlMarkLeased[n], for n a power of two up to maxLeaseList, leases n
// messages of one priority: ?2 priority, ?3 lease end, ?4 receipt, ?5 now
// (the first lease of a message records it as first_received), then
// their IDs. Updating a list of rows in one statement costs much less than
// a statement per row; lists of other lengths are leased in pieces whose
// lengths are powers of two, which keeps the set of statements small.
var sqlMarkLeased = func() map[int]string {
	m := make(map[int]string)
	ids := "?6"
	for n := 1; n <= maxLeaseList; n *= 2 {
		m[n] = `UPDATE ready SET lease_until = ?3, receipt = ?4, attempts = attempts + 1,
			first_received = iif(attempts = 0, ?5, first_received)
			WHERE queue = ?1 AND priority = ?2 AND id IN (` + ids + `)`
		for i := n + 1; i <= 2*n; i++ {
			ids += ", ?" + strconv.Itoa(5+i)
		}
	}
	return m
}()

// maxLeaseList is the longest list of IDs that one sqlMarkLeased statement
// takes.
const maxLeaseList = 32

// leaseListLen returns the length of the first piece in which n messages
// are leased: the largest power of two, up to maxLeaseList, that is not
// more than n.
func leaseListLen(n int) int {
	size := 1
	for size*2 <= min(n, maxLeaseList) {
		size *= 2
	}
	return size
}

// maxReceive is the most messages one Receive returns.
const maxReceive = 1000
