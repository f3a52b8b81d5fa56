/*
 * Promela model of the buffered-channel fast path: the ring in the
 * channel's mapped pages, pushed and popped by userspace with atomics
 * (lib/chan.c: fast_push, fast_pop, kick) and by the kernel under
 * ch->lock (kmod/chan.c: ring_push, ring_pop, ring_readable,
 * ring_writable, ring_len, ring_set_flags, chan_sync_flags,
 * chan_serve_receivers, chan_serve, chan_try_send, chan_try_recv, the
 * flag dance of chan_select, chan_unqueue, chan_kick, chan_close,
 * chan_poll). The protocol is the comment above GOSYNC_CHAN_POS_MASK in
 * include/uapi/gosync.h. Checked by 'make check' (spin/check.sh):
 * exhaustive safety search, about 31 million states (4 minutes).
 *
 * What is modelled:
 *  - a ring of CAP = 2 slots: @tail (its position, and the flags CLOSED,
 *    SEND_WAITERS, RECV_WAITERS, POLLED_IN, POLLED_OUT: two variables,
 *    always compared and swapped together), @head, and per slot a
 *    sequence (2p: free for p; 2p + 1: holds p's value; PUSHING or
 *    POPPING: reserved, GOSYNC_FEATURE_CHAN_ROBUST, without the ids:
 *    nobody dies here, spin/ring_dead.pml has the deaths) and a value.
 *  - a push reserves the slot (2p to PUSHING), claims @tail (a flag that
 *    came meanwhile fails the swap: POLLED ones, swap again; others,
 *    give the slot back, fence, read the flags, kick if any, and go to
 *    the kernel), writes and publishes; a pop reserves the slot (2p + 1
 *    to POPPING), moves @head, reads the value out and frees the slot.
 *    Each of those is one step.
 *  - sender A sends 1 then 2, sender B sends 3 (and 4 with -DNB=4); a
 *    send is fast_push, and when that fails the SEND ioctl: chan_select
 *    of one case (try, set SEND_WAITERS, try again, queue, sync the
 *    flags, unlock; sleep until served; chan_unqueue). A sender whose
 *    send failed (closed) stops.
 *  - receivers C and D, each receiving until it gets "closed" (ok false):
 *    fast_pop, else the RECV ioctl, the same way.
 *  - a third party closing the channel, once, at any moment
 *    (-DSENDER_CLOSES: sender B closes after its sends instead).
 *  - a poller waiting for EPOLLIN (chan_poll: set both POLLED flags,
 *    look, clear the flags of the ready directions; asleep on the poll
 *    queue until woken, then poll again; done once readable).
 *    -DNOPOLLER leaves it out.
 *  - the kick ioctl, made by a push that then reads RECV_WAITERS or
 *    POLLED_IN, and by a pop that then reads SEND_WAITERS or POLLED_OUT.
 *  - a sleeper sleeps until an operation that served it (moved its
 *    value, or gave it "closed" or -EPIPE) set its done flag.
 *
 * Granularity. Promela is sequentially consistent; the C code gets the
 * orders that matter from its barriers (userspace: slot sequence
 * released, full fence, @tail read; kernel: flag set in @tail by an
 * atomic RMW, smp_mb__after_atomic, slots read; a value written before
 * its sequence is released and read after it is acquired). Every step
 * below makes one access to the shared page (an atomic block holds it
 * with the private work around it), except:
 *  - a read of @tail (@head) and the read of its slot's sequence that
 *    follows are one step in userspace: sequences only grow, so what the
 *    later read decides ("full", "empty") the earlier one decides alike,
 *    and a claim needs the word unchanged up to its swap anyway. A
 *    value write (read) is merged with the release after (the swap
 *    before) it: nobody reads a value before its sequence says so.
 *  - ring_push and ring_pop are one step each: a swap the kernel loses
 *    to userspace makes it retry on the newer word, as if it came after
 *    the userspace step; and between its swap and its release a
 *    userspace operation finds the slot as before the swap.
 *  - ring_len is one step: when its result matters (a queued sender: its
 *    SEND_WAITERS fails every userspace claim; or closed) @tail cannot
 *    move while the lock is held, so the order and timing of its two
 *    reads do not matter; the model checks the flag invariant this
 *    relies on (property 5). Where the queue it would serve is empty,
 *    ring_readable/ring_writable are not modelled: their result is then
 *    unused. ring_writable before a push to a queued sender is one step
 *    with the push (@tail frozen, the slot's sequence only grows); in
 *    chan_poll it is one step (it only decides whether POLLED_OUT stays
 *    set, which the IN-waiting poller does not depend on).
 *  - ring_readable is two steps (@head, then its slot's sequence), in
 *    chan_serve_receivers and chan_poll: a pop can run in between.
 *  - poll_wait() is merged with the lock of chan_poll (a wake-up in
 *    between comes from an operation whose effect the poll then sees);
 *    the two flag RMWs at the end of chan_kick are one step (the state
 *    between them only has POLLED flags still set: at most one more
 *    kick); wake-ups are merged with the unlock before them.
 *
 * What is abstracted, and why:
 *  - owner states and claim_pair (spin/select.pml checks them): every
 *    operation here is a select of one case and nobody gives up, so a
 *    queued entry is live until the operation that completes it unlinks
 *    it and sets its done flag.
 *  - deadlines, signals, try-only operations, selects over several
 *    channels, element sizes (a value is a byte), position wrap-around,
 *    RING_TRIES (a kernel swap is only lost to a userspace claim of the
 *    same word; with a bounded number of threads not sixteen times).
 *
 * Properties:
 *  (1) no value lost or duplicated: a value is received (claimed: the
 *      head swap, a kernel pop, a hand-over) at most once, only after it
 *      was sent; a popper reads out the value its position held; at the
 *      end the values received are exactly those whose send succeeded.
 *  (2) order: a value whose send returned before another send began is
 *      received first (so each sender's values arrive in order, and
 *      across receivers the pops follow the pushes).
 *  (3) no lost wake-up (the never claim): whenever nobody holds the lock
 *      and no userspace fast-path operation (or its kick) is under way,
 *      no queued receiver could be served (a value ready at @head, or
 *      closed and drained), no queued sender could (a free slot at
 *      @tail), and the poller is not asleep, unwoken, while readable.
 *      A sleeper stuck for ever would also be an invalid end state.
 *  (4) close: a receiver gets "closed" only once every value sent was
 *      received; no value is received after that; a send that begins
 *      after the close fails.
 *  (5) flags: a sleeper's WAITERS flag is set when it queues after its
 *      last look; whenever the lock is free, each WAITERS flag is set
 *      exactly when its queue holds a sleeper (the never claim).
 *
 * Three flaws of kmod/chan.c that this model found; it checks the code
 * with them fixed, and each -D below restores the code as it is (each
 * fails the check):
 *  -DHANDOFF_AS_IMPLEMENTED: chan_try_send() hands a value straight to
 *    a queued receiver ("a live receiver waits, so the ring is empty"),
 *    but the ring may hold a claimed, unpublished position followed by
 *    published values: B claims pos 0, A claims pos 1; C finds pos 0
 *    unpublished and queues; A publishes 1 at pos 1 and kicks (nothing
 *    to serve: pos 0 is still unpublished), its send returns; A's send
 *    of 2 goes to the kernel (RECV_WAITERS) and hands 2 to C before 1:
 *    property 2. Fixed: hand over only when ring_len() is 0, else push.
 *  -DREADABLE_AS_IMPLEMENTED: ring_readable() reads @head, then its
 *    slot; a pop in between frees the slot (sequence 2(h + cap)) and it
 *    answers "not readable" although h + 1 holds a value. A pushes 1, 2
 *    (ring full); D's fast pop passes its flag check; poll sets POLLED_*,
 *    reads @head = 0; D pops 0; poll reads slot 0 free: not readable,
 *    but writable, so it clears POLLED_OUT and sleeps; D then reads no
 *    POP_KICK flag: the poller sleeps with 2 ready (property 3).
 *    ring_writable() has the same race. Fixed: a sequence beyond the
 *    position's means it moved on: read @head (@tail) again. Since a
 *    pop kicks for any flag (the robust protocol, below), the pop of
 *    this trace kicks for the poller's POLLED_IN, and the check passes
 *    with this -D too (31 M states, no error): the fix stays, as a
 *    second line of defence (chan_serve_receivers() relies on it).
 *  -DSERVE_AS_IMPLEMENTED (needs -DNB=4 -DNOPOLLER to show): chan_serve()
 *    serves receivers, senders, receivers; values its last pass gives
 *    away free slots that no queued sender gets. With pos 1 claimed by B
 *    and unpublished, D queued, A's 1 pushed at pos 2 by the kernel and
 *    A queued with 2: C's pop kicks; the kick finds pos 1 unpublished,
 *    the ring full; B publishes pos 1; the last pass gives it to D,
 *    freeing a slot, and the kick clears RECV_WAITERS before B reads
 *    it: A sleeps with room in the ring (property 3). Fixed: serve
 *    senders again while the last pass moved a value.
 *
 * A flaw of the robust protocol's first draft that this model found
 * (-D restores it, and the check fails):
 *  -DKICKS_AS_BEFORE: a push kicks only for RECV_WAITERS or POLLED_IN, a
 *    pop only for SEND_WAITERS or POLLED_OUT, as before reservations. A
 *    poller that looks while a pop holds POPPING at @head finds the head
 *    not readable, although the next position holds a value, keeps
 *    POLLED_IN and sleeps; the pop then frees the slot, reads no flag of
 *    its own direction, and nobody wakes the poller (property 3). Fixed:
 *    any WAITERS or POLLED flag makes a push or a pop kick.
 *
 * Mutations that the check catches (tried, not kept; each fails within
 * a second):
 *  - M1, fast_push without the flag check and kick after it publishes:
 *    both receivers sleep queued while a value is ready (property 3).
 *  - M2, chan_select looks at the ring before it sets its WAITERS flag
 *    (try, try, then flag and queue): a push that publishes in between
 *    does not kick; a receiver sleeps queued on a value (property 3).
 *  - M3, the push's swap writes pos + 1 without the flags (a bug we
 *    had): a POLLED_IN set between the push's read of @tail and its swap
 *    is lost, so the push does not kick and the poller sleeps on a
 *    readable ring (property 3).
 */
#define CAP		2
#ifndef NB
#define NB		0	/* sender B's second value (0: none) */
#endif

/* Flags in @tail. */
#define CLOSED		1
#define SW		2	/* GOSYNC_CHAN_SEND_WAITERS */
#define RW		4	/* GOSYNC_CHAN_RECV_WAITERS */
#define PIN		8	/* GOSYNC_CHAN_POLLED_IN */
#define POUT		16	/* GOSYNC_CHAN_POLLED_OUT */
#define PUSH_SLOW	(CLOSED | SW | RW)
#define POP_SLOW	RW
#ifdef KICKS_AS_BEFORE
#define PUSH_KICK	(RW | PIN)
#define POP_KICK	(SW | POUT)
#else
/* Any waiter or poller may have looked while we held a reservation. */
#define PUSH_KICK	(RW | PIN | POUT)
#define POP_KICK	(SW | POUT | RW | PIN)
#endif

/* Reservations in a slot's sequence (ids left out: nobody dies here). */
#define PUSHING		64
#define POPPING		128
#define RESERVED(s)	((s) >= PUSHING)

/* Results, as chan_select()'s: send 0 or EPIPE; receive 1 (value) or 0. */
#define EAGAIN		11
#define EPIPE		32

#define BIT(v)		(1 << (v))
#define READABLE	(seq[head % CAP] == 2 * head + 1)
#define WRITABLE	(seq[tpos % CAP] == 2 * tpos)

/* The shared page. */
byte tpos;			/* @tail: the position ... */
byte tfl;			/* ... and the flags */
byte head;
byte seq[CAP];
byte val[CAP];

/* The kernel's channel, under klock. Tasks 0, 1: senders; 2, 3: receivers. */
bool klock;
bool closed;
byte sq[2];			/* sendq, FIFO */
byte sqn;
byte rq[2];			/* recvq */
byte rqn;
bool done[4];			/* served: owner_commit() set @done */
byte res[4];			/* with this result */
byte got[4];			/* a receiver's value buffer */
byte sval[4];			/* a sender's value buffer */

/* The poll queue and the poller. */
bool preg;			/* registered by poll_wait() */
bool pwoken;			/* woken since */
bool psleep;			/* asleep: its last poll found nothing to read */

/* Ghost state for the properties. */
byte busy;			/* userspace fast-path operations under way */
byte sentc;			/* values sent (claimed a position, or handed) */
byte sentok;			/* values whose send has returned success */
byte rcvd;			/* values received */
byte before[5];			/* sentok when the send of v began */
bool close_lin;			/* the close took effect */
bool closed_seen;		/* a receiver got "closed" */
byte finished;

inline note_send(v)
{
	sentc = sentc | BIT(v)
}

inline note_recv(v)
{
	assert(v >= 1 && v <= 4 && (sentc & BIT(v)));	/* it was sent */
	assert((rcvd & BIT(v)) == 0);		/* (1) not twice */
	assert(!closed_seen);			/* (4) nothing after "closed" */
	assert((before[v] & ~rcvd) == 0);	/* (2) earlier sends first */
	rcvd = rcvd | BIT(v);
	before[v] = 0
}

/* A sender's send of v returned success. */
inline note_sent()
{
	assert(!late);				/* (4) a send after close fails */
	sentok = sentok | BIT(v);
	late = 0
}

inline note_closed()
{
	assert(rcvd == sentc);			/* (4) drained first */
	closed_seen = 1
}

/* ring_pop() into dst (one step: see the head comment). */
inline k_pop(ok, dst)
{
	if
	:: seq[head % CAP] == 2 * head + 1 ->
		dst = val[head % CAP];
		note_recv(dst);
		val[head % CAP] = 0;
		seq[head % CAP] = 2 * (head + CAP);
		head++;
		ok = 1
	:: else -> ok = 0
	fi
}

/* ring_push() of v, keeping the flags. */
inline k_push(ok, v)
{
	if
	:: seq[tpos % CAP] == 2 * tpos ->
		val[tpos % CAP] = v;
		seq[tpos % CAP] = 2 * tpos + 1;
		note_send(v);
		tpos++;
		ok = 1
	:: else -> ok = 0
	fi
}

/* chan_sync_flags() */
inline k_sync()
{
	tfl = tfl & ~((rqn == 0 -> RW : 0) | (sqn == 0 -> SW : 0))
}

/* Complete the first queued receiver (sender), unlinked. */
inline serve_recv(v, result)
{
	got[rq[0]] = v; res[rq[0]] = result; done[rq[0]] = 1;
	rq[0] = rq[1]; rq[1] = 0; rqn--
}

inline serve_send(result)
{
	res[sq[0]] = result; done[sq[0]] = 1; sval[sq[0]] = 0;
	sq[0] = sq[1]; sq[1] = 0; sqn--
}

/* spin_unlock(), the wake-ups after it, and chan_wake_pollers(). */
inline unlock_wake()
{
	klock = 0;
	if
	:: preg -> pwoken = 1
	:: else -> skip
	fi
}

/*
 * The kernel, as a machine over program points: kpc. Points below 100
 * touch only what the lock protects; each point from 100 on makes one
 * access to the shared page (or waits), and begins a new step, so
 * userspace interleaves exactly there. The calls of chan_serve() and
 * chan_serve_receivers() return to cs_ret and sr_ret.
 */
#define KDONE		0
#define KLOCK		1
#define SR		2	/* chan_serve_receivers() */
#define SR_CLOSED	3	/*   its second loop */
#define CS		4	/* chan_serve() */
#define CS_SENDERS	5	/*   its loop over queued senders */
#define S_TRY		6	/* chan_try_send() */
#define S_SERVED	7
#define S_TRIED		8	/* chan_select() after a try of a send */
#define R_TRY		9	/* chan_try_recv() */
#define R_POPPED	10
#define R_EMPTY		11
#define R_TRIED		12
#define C_SENDERS	13	/* chan_close(): fail queued senders */
#define CS_AGAIN	14	/* chan_serve(): after the last receivers */

#define SR_HEAD		100	/* ring_readable(): @head ... */
#define SR_SEQ		101	/* ... its sequence, and ring_pop() */
#define SR_LEN		102	/* ring_len() */
#define CS_PUSH		103	/* ring_writable() and ring_push() */
#define S_LEN		104	/* ring_len() before a hand-over */
#define S_PUSH		105	/* ring_push() */
#define S_FLAG		106	/* ring_set_flags(SEND_WAITERS) */
#define R_POP		107	/* ring_pop() */
#define R_LEN		108	/* ring_len() */
#define R_FLAG		109	/* ring_set_flags(RECV_WAITERS) */
#define FIN		110	/* chan_sync_flags(), unlock, wake */
#define KSLEEP		111	/* asleep until served */
#define KUNQ		112	/* chan_unqueue() */
#define K_SYNC		113	/* chan_kick(): sync, clear POLLED, unlock */
#define C_SET		114	/* chan_close(): closed, CLOSED */

#define KLOCALS \
	byte kpc, kentry, sr_ret, cs_ret, ret, x, kh; \
	bool ok, second, shared, late, moved, giveback

inline kernel()
{
	atomic {
		do
		:: kpc == KLOCK && !klock -> klock = 1; kpc = kentry
		:: kpc >= 100 && shared -> shared = 0; goto kstep
		:: kpc == KDONE ->
			kentry = 0; sr_ret = 0; cs_ret = 0; x = 0; kh = 0;
			ok = 0; second = 0; shared = 0;
			goto kout

		/* chan_serve_receivers(): values to queued receivers ... */
		:: kpc == SR -> kpc = (rqn > 0 -> SR_HEAD : SR_CLOSED)
		:: kpc == SR_HEAD && !shared -> shared = 1;
			kh = head;
			kpc = SR_SEQ
		:: kpc == SR_SEQ && !shared -> shared = 1;
			if
			:: seq[kh % CAP] == 2 * kh + 1 ->
				k_pop(ok, x);
				if
				:: ok -> serve_recv(x, 1); moved = 1; kpc = SR
				:: else -> kpc = SR_CLOSED
				fi;
				x = 0
			:: RESERVED(seq[kh % CAP]) && head != kh ->
				kpc = SR_HEAD		/* moved on: again */
#ifndef READABLE_AS_IMPLEMENTED
			:: !RESERVED(seq[kh % CAP]) && seq[kh % CAP] > 2 * kh + 1 ->
				kpc = SR_HEAD		/* popped: again */
#endif
			:: else -> kpc = SR_CLOSED
			fi;
			kh = 0
		/* ... then, closed and drained, "closed" */
		:: kpc == SR_CLOSED -> kpc = (closed && rqn > 0 -> SR_LEN : sr_ret)
		:: kpc == SR_LEN && !shared -> shared = 1;
			if
			:: tpos == head -> note_closed(); serve_recv(0, 0); kpc = SR_CLOSED
			:: else -> kpc = sr_ret
			fi

		/* chan_serve(): receivers, queued senders' values in, receivers */
		:: kpc == CS -> sr_ret = CS_SENDERS; kpc = SR
		:: kpc == CS_SENDERS ->
			if
			:: sqn > 0 -> kpc = CS_PUSH
			:: else -> moved = 0; sr_ret = CS_AGAIN; kpc = SR
			fi
		:: kpc == CS_PUSH && !shared -> shared = 1;
			k_push(ok, sval[sq[0]]);
			if
			:: ok -> serve_send(0); kpc = CS_SENDERS
			:: else -> moved = 0; sr_ret = CS_AGAIN; kpc = SR
			fi
		:: kpc == CS_AGAIN ->
#ifndef SERVE_AS_IMPLEMENTED
			/* A value went to a receiver: its slot, to a sender. */
			if
			:: moved && sqn > 0 -> kpc = CS_SENDERS
			:: else -> kpc = cs_ret
			fi;
#else
			kpc = cs_ret;
#endif
			moved = 0

		/* chan_try_send() */
		:: kpc == S_TRY ->
			if
			:: closed -> ret = EPIPE; kpc = S_TRIED
			:: else -> cs_ret = S_SERVED; kpc = CS
			fi
		:: kpc == S_SERVED ->
#ifdef HANDOFF_AS_IMPLEMENTED
			if
			:: rqn > 0 ->
				note_send(v); note_recv(v); serve_recv(v, 1);
				ret = 0; kpc = S_TRIED
			:: else -> kpc = S_PUSH
			fi
#else
			kpc = (rqn > 0 -> S_LEN : S_PUSH)
		:: kpc == S_LEN && !shared -> shared = 1;
			if
			:: tpos == head ->	/* nothing in the ring: hand over */
				note_send(v); note_recv(v); serve_recv(v, 1);
				ret = 0; kpc = S_TRIED
			:: else -> kpc = S_PUSH
			fi
#endif
		:: kpc == S_PUSH && !shared -> shared = 1;
			k_push(ok, v);
			ret = (ok -> 0 : EAGAIN);
			kpc = S_TRIED
		/* chan_select(): set the flag, try again, or queue */
		:: kpc == S_TRIED ->
			if
			:: ret == EAGAIN && !second -> kpc = S_FLAG
			:: ret == EAGAIN && second ->
				assert(tfl & SW);	/* (5) */
				sval[me] = v; sq[sqn] = me; sqn++;
				kpc = FIN
			:: else -> kpc = FIN
			fi
		:: kpc == S_FLAG && !shared -> shared = 1;
			tfl = tfl | SW;
			second = 1;
			kpc = S_TRY

		/* chan_try_recv() */
		:: kpc == R_TRY -> cs_ret = R_POP; kpc = CS
		:: kpc == R_POP && !shared -> shared = 1;
			k_pop(ok, x);
			if
			:: ok -> cs_ret = R_POPPED; kpc = CS
			:: else -> kpc = R_EMPTY
			fi
		:: kpc == R_POPPED -> ret = 1; kpc = R_TRIED
		:: kpc == R_EMPTY ->
			if
			:: sqn > 0 || closed -> kpc = R_LEN
			:: else -> ret = EAGAIN; kpc = R_TRIED
			fi
		:: kpc == R_LEN && !shared -> shared = 1;
			if
			:: tpos == head && sqn > 0 ->	/* hand-over */
				x = sval[sq[0]];
				note_send(x); note_recv(x);
				serve_send(0);
				ret = 1
			:: tpos == head && sqn == 0 ->	/* closed, drained */
				note_closed();
				ret = 0
			:: else -> ret = EAGAIN
			fi;
			kpc = R_TRIED
		:: kpc == R_TRIED ->
			if
			:: ret == EAGAIN && !second -> kpc = R_FLAG
			:: ret == EAGAIN && second ->
				assert(tfl & RW);	/* (5) */
				rq[rqn] = me; rqn++;
				kpc = FIN
			:: else -> kpc = FIN
			fi
		:: kpc == R_FLAG && !shared -> shared = 1;
			tfl = tfl | RW;
			second = 1;
			kpc = R_TRY

		/* end of chan_select()'s locked section; sleep; unqueue */
		:: kpc == FIN && !shared -> shared = 1;
			k_sync();
			unlock_wake();
			if
			:: ret == EAGAIN -> kpc = KSLEEP
			:: else ->
				if
				:: me < 2 && ret == 0 && v != 0 -> note_sent()
				:: else -> skip		/* a receive, or the close */
				fi;
				kpc = KDONE
			fi
		:: kpc == KSLEEP && !shared && done[me] -> shared = 1;
			ret = res[me];
			if
			:: me < 2 && ret == 0 -> note_sent()
			:: else -> skip
			fi;
			done[me] = 0; res[me] = 0; got[me] = 0;
			kpc = KUNQ
		:: kpc == KUNQ && !shared && !klock -> shared = 1;
			k_sync();		/* lock, sync, unlock */
			kpc = KDONE

		/* chan_kick() */
		:: kpc == K_SYNC && !shared -> shared = 1;
			k_sync();
			tfl = tfl & ~(PIN | POUT);
			unlock_wake();
			busy--;
			if
			:: giveback ->		/* a push gave its slot back */
				giveback = 0; kentry = S_TRY; kpc = KLOCK
			:: !giveback && me < 2 ->
				note_sent(); ret = 0; kpc = KDONE	/* the push kicked */
			:: !giveback && me >= 2 ->
				ret = 1; kpc = KDONE		/* the pop kicked */
			fi

		/* chan_close() */
		:: kpc == C_SET && !shared -> shared = 1;
			closed = 1;
			tfl = tfl | CLOSED;
			close_lin = 1;
			sr_ret = C_SENDERS;
			kpc = SR
		:: kpc == C_SENDERS ->
			do
			:: sqn > 0 -> serve_send(EPIPE)
			:: else -> break
			od;
			ret = 0;
			kpc = FIN
		od
	}
kout:
	skip
}

/* ---- the processes ----------------------------------------------- */

proctype sender(byte me; byte v1; byte v2)
{
	byte v = v1;
	byte et, ef, s;
	bool gb;
	KLOCALS;

next:
	/* fast_push(v): read @tail, then its slot's sequence. */
	atomic {
		before[v] = sentok;
		late = close_lin;
		busy++;
		et = tpos;
		ef = tfl;
		s = seq[et % CAP];
		if
		:: (ef & PUSH_SLOW) || s != 2 * et ->	/* a flag, full, reserved */
			busy--;
			et = 0; ef = 0; s = 0;
			kentry = S_TRY; kpc = KLOCK;
			goto kstep
		:: else -> skip
		fi
	}
	/* Reserve the slot: its sequence from 2p to PUSHING. */
	atomic {
		if
		:: seq[et % CAP] == 2 * et -> seq[et % CAP] = PUSHING
		:: else ->
			busy--;
			et = 0; ef = 0; s = 0;
			kentry = S_TRY; kpc = KLOCK;
			goto kstep
		fi
	}
claim:
	/* Swap the whole word: a flag set meanwhile fails the claim. */
	atomic {
		if
		:: tpos == et && tfl == ef ->
			tpos = et + 1;		/* the flags kept */
			note_send(v)
		:: else ->
			assert(tpos == et);	/* only the reserver moves it */
			ef = tfl;
			if
			:: ef & PUSH_SLOW -> gb = 1	/* give the slot back */
			:: else -> goto claim		/* POLLED flags: again */
			fi
		fi
	}
	if
	:: gb ->
		gb = 0;
		/* Give back: 2p again; fence, then the flags. */
		atomic { seq[et % CAP] = 2 * et; s = 0 }
		atomic {
			et = 0; ef = 0;
			if
			:: tfl & (PUSH_KICK | POP_KICK) ->
				giveback = 1;
				kentry = CS; cs_ret = K_SYNC; kpc = KLOCK
			:: else ->
				busy--;
				kentry = S_TRY; kpc = KLOCK
			fi
		}
		goto kstep
	:: else -> skip
	fi;
	/* Write the value, release the sequence. */
	atomic { val[et % CAP] = v; seq[et % CAP] = 2 * et + 1; s = 0 }
	/* Full fence, then the flags. */
	atomic {
		et = 0; ef = 0;
		if
		:: tfl & PUSH_KICK -> kentry = CS; cs_ret = K_SYNC; kpc = KLOCK
		:: else -> busy--; note_sent(); ret = 0; goto sent
		fi
	}
kstep:
	kernel();
#ifdef SENDER_CLOSES
	if
	:: close_lin && me == 1 && v == 0 -> goto out
	:: else -> skip
	fi;
#endif
sent:
	if
	:: ret == 0 && v == v1 && v2 != 0 -> v = v2; ret = 0; goto next
	:: else -> ret = 0
	fi;
	v = 0;
#ifdef SENDER_CLOSES
	if
	:: me == 1 ->		/* sender B closes after its sends */
		kentry = C_SET;
		kpc = KLOCK;
		goto kstep
	:: else -> skip
	fi;
#endif
out:
	finished++
}

proctype receiver(byte me)
{
	byte h, s, v;
	KLOCALS;

next:
	/* fast_pop(): no RECV_WAITERS ... */
	atomic {
		if
		:: tfl & POP_SLOW -> kentry = R_TRY; kpc = KLOCK; goto kstep
		:: else -> busy++
		fi
	}
	/* ... read @head, then its slot's sequence. */
	atomic {
		h = head;
		s = seq[h % CAP];
		if
		:: s != 2 * h + 1 ->		/* empty, a push or pop under way */
			busy--;
			h = 0; s = 0;
			kentry = R_TRY; kpc = KLOCK;
			goto kstep
		:: else -> skip
		fi
	}
	/* Reserve the slot: its sequence from 2p + 1 to POPPING. */
	atomic {
		if
		:: seq[h % CAP] == 2 * h + 1 -> seq[h % CAP] = POPPING
		:: else ->
			busy--;
			h = 0; s = 0;
			kentry = R_TRY; kpc = KLOCK;
			goto kstep
		fi
	}
	/* Move @head: only the holder of slot(head) does. */
	atomic {
		assert(head == h);
		head = h + 1;
		v = val[h % CAP];
		note_recv(v)
	}
	/* Read the value out, free the slot for the next lap. */
	atomic {
		assert(val[h % CAP] == v);	/* (1) nobody wrote it meanwhile */
		val[h % CAP] = 0;
		seq[h % CAP] = 2 * (h + CAP);
		h = 0; s = 0; v = 0
	}
	/* Full fence, then the flags. */
	atomic {
		if
		:: tfl & POP_KICK -> kentry = CS; cs_ret = K_SYNC; kpc = KLOCK
		:: else -> busy--; goto next
		fi
	}
kstep:
	kernel();
	if
	:: ret != 0 -> ret = 0; goto next	/* a value, or a kick done */
	:: else -> skip				/* "closed": done */
	fi;
	finished++
}

#ifndef SENDER_CLOSES
active proctype closer()
{
	byte me = 9, v = 0;
	KLOCALS;

	kentry = C_SET;
	kpc = KLOCK;
kstep:
	kernel()
}
#endif

#ifndef NOPOLLER
/* chan_poll() for EPOLLIN, again after each wake-up, until readable. */
active proctype poller()
{
	byte kh;
	bool in, out;

poll:
	/* poll_wait() (merged: see the head comment), lock, set the flags */
	atomic {
		!klock && (!psleep || pwoken) ->
		klock = 1;
		preg = 1;
		pwoken = 0;
		psleep = 0;
		tfl = tfl | PIN | POUT
	}
	/* ring_readable() */
readable:
	atomic { kh = head }
	atomic {
		if
		:: RESERVED(seq[kh % CAP]) && head != kh -> goto readable
		:: else -> skip
		fi;
#ifndef READABLE_AS_IMPLEMENTED
		if
		:: !RESERVED(seq[kh % CAP]) && seq[kh % CAP] > 2 * kh + 1 ->
			goto readable	/* popped */
		:: else -> skip
		fi;
#endif
		in = (seq[kh % CAP] == 2 * kh + 1) || closed || sqn > 0;
		kh = 0;
		if
		:: closed -> out = 1; goto clear
		:: else -> skip
		fi
	}
	/* ring_writable(), one step (see the head comment) */
	atomic { out = (seq[tpos % CAP] == 2 * tpos) || rqn > 0 }
clear:
	/* Clear the flags of the ready directions, unlock. */
	atomic {
		tfl = tfl & ~((in -> PIN : 0) | (out -> POUT : 0));
		klock = 0;
		out = 0;
		if
		:: in -> preg = 0; in = 0
		:: else -> psleep = 1; goto poll	/* asleep until woken */
		fi
	}
	finished++
}
#define NFIN	5
#else
#define NFIN	4	/* the two senders, the two receivers */
#endif

/*
 * (3) and (5), checked in every state (between atomic steps): with the
 * lock free, each WAITERS flag says whether its queue holds a sleeper;
 * and with, in addition, no fast-path operation under way, nobody
 * sleeps on a ring that could serve them.
 */
#define FLAGS_OK	(((rqn > 0) == ((tfl & RW) != 0)) && \
			 ((sqn > 0) == ((tfl & SW) != 0)))
#define SERVED_OK	(!(rqn > 0 && (READABLE || (closed && tpos == head))) && \
			 !(sqn > 0 && WRITABLE) && \
			 !(psleep && !pwoken && (READABLE || closed || sqn > 0)))

never {
	do
	:: !(klock || (FLAGS_OK && (busy > 0 || SERVED_OK))) -> break
	:: else
	od
}

init
{
	atomic {
		seq[0] = 0;
		seq[1] = 2;
		run sender(0, 1, 2);
		run sender(1, 3, NB);
		run receiver(2);
		run receiver(3)
	}
	finished == NFIN;
	/* (1): the values sent are the values received. */
	assert(sentok == sentc && rcvd == sentc);
	assert(rqn == 0 && sqn == 0 && !klock && closed_seen)
}
