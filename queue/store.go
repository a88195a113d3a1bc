package queue

import "time"

// Depth counts one queue's messages by state. Every durable backend's Stats
// method returns it (memqueue's Counts too), so that code that watches a
// queue, such as a metrics collector or an operator's command, works with
// any of them.
type Depth struct {
	Ready   int // can be received now (including messages whose lease ran out)
	Leased  int // received, and the lease is not over
	Delayed int // published or nacked with a delay that has not passed
	Dead    int // dead-lettered
}

// DeadMessage is one dead letter, as a backend's Dead method lists it: the
// message as it was last delivered, why it was given up, and when.
type DeadMessage struct {
	// Message is the message as it was last delivered: its ID, body,
	// attributes and attempt count. Its Receipt is nil.
	Message *Message
	Reason  string    // the text of the error given to DeadLetter
	At      time.Time // when it was dead-lettered
}
