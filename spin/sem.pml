/*
 * Promela model of gosync's weighted-semaphore fast-path protocol
 * (kmod/sem.c, lib/sem.c, include/uapi/gosync.h). Checked by
 * 'make check' with spin (spin/check.sh): safety (permits conserved,
 * assertions, no invalid end state) over every interleaving.
 *
 * What is modelled:
 *  - the shared state word: count, WAITERS, POLLED. Userspace changes it
 *    by compare-and-swap, modelled as one atomic conditional update;
 *  - the kernel's lock, FIFO queue and grant loop; the acquire slow path
 *    as the separate steps the kernel takes (lock, try unless anybody is
 *    queued, set WAITERS, enqueue, grant, unlock, sleep);
 *  - the fence of a kernel call whose swaps keep losing (WAITERS set
 *    under the lock, lifted before the unlock if nobody is queued), taken
 *    or not at every kernel try and release;
 *  - waiters that give up (deadline or signal) and leave the queue;
 *  - a poller that registers on the wait queue, then checks readability
 *    under the lock, setting POLLED when not readable.
 *
 * A lost wake-up shows as an invalid end state: a waiter or the poller
 * blocked for ever although every user has finished and all permits are
 * back. The conservation monitor checks that permits are never lost or
 * created.
 */
#define SIZE	2
#define NUSERS	3
#define ROUNDS	1

byte count = SIZE;
bool waiters_flag;
bool polled_flag;
byte held;			/* permits owned by users */
bool klock;			/* the kernel's sem->lock */
byte queue[NUSERS];
byte qlen;
bool served[NUSERS];
byte need[NUSERS];
byte pollwakes;			/* generation of the poll wait queue */
byte finished;

/* Permits are never lost or created: checked in every reachable state. */
active proctype conservation()
{
	assert(count + held == SIZE)
}

inline lock() { atomic { !klock -> klock = 1 } }
inline unlock() { klock = 0 }

/* sem_grant(): serve the head while it fits; clear WAITERS when empty. */
inline grant()
{
	do
	:: qlen > 0 && need[queue[0]] <= count ->
		atomic {
			count = count - need[queue[0]];
			held = held + need[queue[0]];
			served[queue[0]] = 1;
		}
		j = 0;
		do
		:: j + 1 < qlen -> queue[j] = queue[j + 1]; j++
		:: else -> break
		od;
		qlen--
	:: else -> break
	od;
	if
	:: qlen == 0 -> waiters_flag = 0
	:: else -> skip
	fi
}

/* The fence, taken or not, by a kernel call under the lock. */
inline maybe_fence()
{
	if
	:: waiters_flag = 1
	:: skip
	fi
}

/* Lifting it: WAITERS stays set only for a non-empty queue. */
inline unfence()
{
	if
	:: qlen == 0 -> waiters_flag = 0
	:: else -> skip
	fi
}

/* sem_try_take(), under the lock: the queue decides, not the flag. */
inline kernel_try_take(n, ok)
{
	maybe_fence();
	atomic {
		if
		:: qlen == 0 && count >= n ->
			count = count - n; held = held + n; ok = 1
		:: else -> ok = 0
		fi
	}
}

/* Userspace compare-and-swap acquire (the library's fast path). */
inline try_take(n, ok)
{
	atomic {
		if
		:: !waiters_flag && count >= n ->
			count = count - n; held = held + n; ok = 1
		:: else -> ok = 0
		fi
	}
}

proctype user(byte id; byte n; bool may_give_up)
{
	byte r, j, k;
	bool ok, was_head;

	need[id] = n;
	for (r : 1 .. ROUNDS) {
		/* ---- acquire ---- */
		try_take(n, ok);			/* lib fast path */
		if
		:: !ok ->
			lock();
			kernel_try_take(n, ok);		/* kernel: sem_try_take */
			if
			:: ok -> unfence(); unlock()
			:: !ok ->
				waiters_flag = 1;
				served[id] = 0;
				queue[qlen] = id;
				qlen++;
				grant();
				unlock();
				if
				:: served[id] -> ok = 1		/* woken */
				:: may_give_up ->		/* deadline/signal */
					lock();
					if
					:: served[id] -> ok = 1
					:: else ->
						was_head = queue[0] == id;
						k = 0;
						do
						:: queue[k] == id -> break
						:: else -> k++
						od;
						do
						:: k + 1 < qlen -> queue[k] = queue[k + 1]; k++
						:: else -> break
						od;
						qlen--;
						if
						:: was_head || qlen == 0 -> grant()
						:: else -> skip
						fi;
						ok = 0
					fi;
					unlock();
					if
					:: !ok -> pollwakes++	/* nobody left: wake pollers */
					:: else -> skip
					fi
				fi
			fi
		:: else -> skip
		fi;
		if
		:: !ok -> goto next			/* gave up */
		:: else -> skip
		fi;
		assert(held <= SIZE);

		/* ---- release ---- */
		atomic {
			if
			:: !waiters_flag && !polled_flag ->	/* lib fast path */
				count = count + n; held = held - n; ok = 0
			:: else -> skip				/* ok stays 1 */
			fi
		}
		if
		:: ok ->					/* kernel release */
			lock();
			maybe_fence();
			atomic {
				assert(count + n <= SIZE);
				count = count + n; held = held - n;
				polled_flag = 0
			}
			grant();
			unlock();
			pollwakes++
		:: else -> skip
		fi;
next:		skip
	}
	finished++
}

/* A poller waiting for the semaphore to become readable, twice. */
active proctype poller()
{
	byte polls, seen;
	bool readable;

	do
	:: polls < 2 ->
		seen = pollwakes;			/* poll_wait() */
		lock();
		/* state = atomic64_read(); readable from that snapshot ... */
		readable = !waiters_flag && count >= 1;
		if
		:: !readable ->
			/* ... else atomic64_fetch_or(POLLED), judged anew */
			atomic {
				readable = !waiters_flag && count >= 1;
				polled_flag = 1
			}
		:: else -> skip
		fi;
		unlock();
		if
		:: readable -> polls++
		:: else ->
			/* sleep until woken, unless everybody is gone */
			if
			:: pollwakes != seen -> skip
			:: pollwakes == seen && finished == NUSERS &&
			   count == SIZE ->
				assert(false)		/* lost poll wake-up */
			fi
		fi
	:: else -> break
	od
}

init
{
	atomic {
		run user(0, 2, 0);
		run user(1, 1, 1);
		run user(2, 1, 0)
	}
	/* Every waiter was served or gave up: none sleeps for ever. */
	finished == NUSERS;
	assert(count == SIZE && held == 0 && qlen == 0 && !waiters_flag)
}
