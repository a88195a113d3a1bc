package pool

// ring is a FIFO of tasks in a circular buffer.
type ring struct {
	buf  []task
	head int
	n    int
}

func (r *ring) len() int { return r.n }

// grow makes room for at least capacity tasks.
func (r *ring) grow(capacity int) {
	if capacity <= len(r.buf) {
		return
	}
	buf := make([]task, capacity)
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring) push(t task) {
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = t
	r.n++
}

func (r *ring) pop() task {
	t := r.buf[r.head]
	r.buf[r.head] = nil
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	return t
}

func (r *ring) clear() {
	for r.n > 0 {
		r.pop()
	}
}
