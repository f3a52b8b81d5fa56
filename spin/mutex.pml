/*
 * Promela model of libgosync's Mutex (lib/sync.c: mutex_lock_until,
 * mutex_lock_slow, mutex_taken, mutex_unlock) on its parking lot
 * (kmod/lot.c: GOSYNC_IOC_LOT_PARK / _UNPARK). Checked by 'make check'
 * with spin (spin/check.sh): exhaustive safety search (assertions and
 * invalid end states).
 *
 * What is modelled:
 *  - the mutex word: LOCKED, STARVING, HANDOFF and the waiter count
 *    (here from bit 3; three threads fit). Userspace changes it only by
 *    compare-and-swap, modelled as one atomic step that either stores the
 *    new value or, like atomic_compare_exchange, reloads the caller's
 *    snapshot. Loads are separate steps, so snapshots go stale as in C;
 *  - the kernel lot queue: PARK compares (word & LOCKED) == LOCKED and
 *    queues (at the tail, or at the front with PARK_FRONT) in one atomic
 *    step, else returns EAGAIN; UNPARK(1) dequeues the head and marks it
 *    chosen, returning how many it woke; a parked waiter whose deadline
 *    passes leaves the queue unless already chosen, in which case the
 *    park returns 0 ("served wins"); once the deadline has passed, a
 *    later park that passes the compare returns ETIMEDOUT at once;
 *  - one signal (EINTR) in the whole run, which any parked thread may
 *    take: it leaves the queue unless chosen and re-runs the loop;
 *  - the "waited over GS_MUTEX_STARVATION_NS" test after each park: a
 *    nondeterministic choice (time only grows: once true it stays true),
 *    so both normal mode and starvation mode with hand-off are explored.
 *
 * Threads: thread 0 locks and unlocks twice, thread 1 once, with no
 * deadline; thread 2 locks once with a deadline that may pass whenever it
 * is parked (gs_mutex_lock_until) and unlocks only if it got the mutex.
 * (Both untimed threads twice is 4.6M states and half a minute without
 * the signal: too slow for 'make check'.) -DROUNDS=1 and -DSIGNALS=0
 * shrink the run.
 *
 * Abstracted: the spin phase of the slow path (it only re-reads the word,
 * which is no different from the thread running later); spurious failures
 * of the weak CAS (a reload of the same value); trylock; the deadline's
 * clock (only whether it has passed matters); the lot's other words.
 *
 * Checked:
 *  1. mutual exclusion: at most one thread in the critical section;
 *  2. no lost wake-up: a thread parked for ever is an invalid end state
 *     (the untimed threads block on their park); when all threads are
 *     done, nobody is parked or chosen and the word is 0;
 *  3. the waiter count equals the number of threads counted in (a ghost
 *     flag per thread, set and cleared by the same CAS); HANDOFF is set
 *     only with LOCKED; the queue length matches the parked threads;
 *     every unlock finds the mutex held and not handed off (mutex_unlock
 *     never returns -EPERM to the holder);
 *  4. a newcomer (not counted in) takes the mutex only from a word with
 *     neither STARVING nor HANDOFF set. With -DSTRICT_HANDOFF also: a
 *     handed-off mutex is not claimed by a waiter other than the one the
 *     hand-off's unpark chose. That does NOT hold (see the note above
 *     lock()); it is a fairness matter, not safety, so it is not checked
 *     by default.
 *
 * Mutations tried (each on a copy, not kept here), default run:
 *  M1 mutex_unlock: after a hand-off whose unpark woke nobody, release the
 *     mutex (clear HANDOFF and LOCKED) and return without the second
 *     unpark -> invalid end state (depth 99): a waiter that parked after
 *     the first unpark sleeps for ever on a free mutex.
 *  M2 deadline path: count out even when the mutex is free (drop "take it
 *     if free") -> no error, also with both untimed threads looping
 *     twice or the timed thread looping twice. Harmless: a park returns
 *     ETIMEDOUT only when its waiter was not chosen ("served wins"), so
 *     a timed-out waiter carries away no wake-up, and whoever freed the
 *     mutex unparked somebody else or found nobody to wake.
 *  M3 HANDOFF claimable after a park that returned EAGAIN (woken = ret
 *     == 0 || ret == EAGAIN) -> no error: the claimer is a counted-in
 *     waiter, so the count stays right and the waiter the hand-off chose
 *     sees LOCKED and re-parks; the claimer's unlock wakes it. It is the
 *     same kind of overtaking the unmutated code allows (see the note
 *     above lock()).
 *  M3b HANDOFF claimable by any thread, newcomers too (no 'woken' test)
 *     -> assertion: waiter count (a newcomer counts out unbalanced).
 *  M4 kernel PARK without the compare (queue whatever the word) ->
 *     invalid end state (depth 101): the classic lost wake-up.
 *  M5 kernel: a waiter chosen and then timing out reports ETIMEDOUT
 *     (no "served wins") -> invalid end state: its wake-up is lost.
 *  M6 mutex_unlock withdraws the hand-off without the "claimed
 *     meanwhile" test -> assertion: the claimer's own unlock finds the
 *     mutex released under it (-EPERM for the holder).
 */
#define NT	3
#define NONE	255

#define L	1		/* MUTEX_LOCKED */
#define S	2		/* MUTEX_STARVING */
#define H	4		/* MUTEX_HANDOFF */
#define W	8		/* MUTEX_WAITER: the count is word / W */

#define OK	0
#define EAGAIN	1
#define ETIMEDOUT 2
#define EINTR	3
#define QUEUED	4

byte word;			/* word 0 of the lot's page */
bool counted[NT];		/* ghost: counted itself in */
byte cs;			/* threads in the critical section */
byte handoff_to = NONE;		/* ghost: waiter a hand-off's unpark chose */
byte finished;

/* The kernel's lot: parked threads in queue order; chosen = w.woken. */
byte q[NT];
byte qlen;
bool chosen[NT];
bool parked[NT];
#ifndef SIGNALS
#define SIGNALS	1
#endif
#ifndef ROUNDS
#define ROUNDS	2
#endif
byte signals = SIGNALS;		/* signals left to deliver */

/*
 * Property 3, checked after every change of the word (only CAS changes
 * it) and of the queue.
 */
inline invariants()
{
	assert(word / W == counted[0] + counted[1] + counted[2]);
	assert(!(word & H) || (word & L));
	assert(qlen == parked[0] + parked[1] + parked[2])
}

/*
 * atomic_compare_exchange(&word, &st, nw); on success the CAS also sets
 * the ghosts: counted[id], and handoff_to cleared with HANDOFF.
 */
inline cas(nw, cin)
{
	d_step {
		if
		:: word == st ->
			word = nw; counted[id] = cin; ok = 1;
			if
			:: !(nw & H) -> handoff_to = NONE
			:: else -> skip
			fi;
			invariants()
		:: else -> st = word; ok = 0
		fi
	}
}

/* After a park that did not time out: the C loop's tail. */
inline after_park()
{
	woken = (ret == OK);
	ret = 0;
	if
	:: woken -> front = 1	/* if we lose this race, keep our place */
	:: else -> skip
	fi;
	if
	:: starving = 1		/* waited over GS_MUTEX_STARVATION_NS */
	:: skip
	fi;
	st = word
}

/* mutex_taken(st, starving) into nw */
inline taken()
{
	nw = ((st | L) & ~H) - W;
	if
	:: !starving || st / W == 1 -> nw = nw & ~S
	:: else -> skip
	fi
}

/* Remove thread id from the queue (deadline or signal, not chosen). */
inline qremove()
{
	j = 0;
	do
	:: q[j] == id -> break
	:: else -> j++
	od;
	do
	:: j + 1 < qlen -> q[j] = q[j + 1]; j++
	:: else -> break
	od;
	qlen--;
	q[qlen] = NONE;
	parked[id] = 0;
	j = 0;
	invariants()
}

/*
 * lot_park(lot, 0, LOCKED, LOCKED, deadline, front ? PARK_FRONT : 0),
 * its first half: compare and queue (ret = QUEUED), or EAGAIN, or
 * ETIMEDOUT once the deadline has passed. The sleep is in lock().
 */
inline park()
{
	d_step {
		if
		:: !(word & L) -> ret = EAGAIN
		:: else ->
			if
			:: expired -> ret = ETIMEDOUT
			:: else ->
				if
				:: front ->
					j = qlen;
					do
					:: j > 0 -> q[j] = q[j - 1]; j--
					:: else -> break
					od;
					q[0] = id
				:: else -> q[qlen] = id
				fi;
				qlen++;
				parked[id] = 1;
				ret = QUEUED;
				invariants()
			fi
		fi
	}
}

/* lot_unpark(lot, 0, 1) into n; ho: the unlocker is handing off. */
inline unpark(ho)
{
	d_step {
		if
		:: qlen > 0 ->
			if
			:: ho && (word & H) -> handoff_to = q[0]
			:: else -> skip
			fi;
			chosen[q[0]] = 1;
			parked[q[0]] = 0;
			q[0] = q[1]; q[1] = q[2]; q[2] = NONE;
			qlen--;
			n = 1;
			invariants()
		:: else -> n = 0
		fi
	}
}

/*
 * The CAS that took the mutex succeeded from snapshot st: properties 1
 * and 4 (a newcomer takes it only when neither STARVING nor HANDOFF is
 * set). The -DSTRICT_HANDOFF check is in lock(), before the claim.
 */
inline got_it()
{
	d_step {
		assert(queued || !(st & (S | H)));
		assert(cs == 0);	/* 1: mutual exclusion */
		cs++;
		/* dead until the unlock */
		st = 0; nw = 0; ret = 0; queued = 0; starving = 0;
		woken = 0; front = 0; expired = 0; ok = 0
	}
}

/*
 * mutex_lock_until(); res = 1: locked, 0: deadline. The fast path's CAS
 * from 0 and the slow path, without its spin phase.
 *
 * Note: 'woken' means "my last park returned 0", and that wake-up may
 * come from an unlock in normal mode that ran long before a hand-off.
 * So a HANDOFF can be claimed by a waiter other than the one its unpark
 * chose, and the starving waiter the kernel chose is passed over (it sees
 * LOCKED and re-parks at the front; the claimer's mutex_taken may even
 * end starvation mode). Safe, but not what the comment in lib/sync.c
 * says ("which alone may claim it"). -DSTRICT_HANDOFF finds it, e.g.:
 * T0 locks; T2 and T1 count in, T1 parks; T0 unlocks in normal mode and
 * is delayed before its unpark; T2's park gets EAGAIN; T0's unpark
 * chooses T1; T0 locks again (newcomer, mutex free, not starving); T2
 * sets STARVING and parks; T0 unlocks: hands off (LOCKED|STARVING|
 * HANDOFF) and unparks T2; T1, back from its old wake-up with woken set,
 * sees HANDOFF and claims it ahead of T2.
 *
 * Each atomic block below is local computation on the snapshot st ending
 * in at most one access to shared state (a CAS), and a failed CAS retries
 * within the block: a failed CAS is only a load, and a load followed at
 * once by the next attempt is the same as the first attempt made later.
 * Plain loads (st = word) and parks are steps of their own, so decisions
 * that lead to a park are taken on a snapshot that may be stale, as in C.
 */
inline lock()
{
	atomic {
		st = 0;
		cas(L, 0);
		if
		:: ok -> got_it(); res = 1; goto locked
		:: else -> skip		/* the failed CAS loaded st */
		fi
	};
loop:
	atomic {
		if
		:: woken && (st & H) ->
			taken();
#ifdef STRICT_HANDOFF
			assert(word != st || handoff_to == id || handoff_to == NONE);
#endif
			cas(nw, 0);
			if
			:: ok -> got_it(); res = 1; goto locked
			:: else -> goto loop
			fi
		:: !(woken && (st & H)) && !(st & L) &&
		   (queued || !(st & S)) ->
			if
			:: queued -> taken()
			:: else -> nw = st | L
			fi;
			cas(nw, 0);
			if
			:: ok -> got_it(); res = 1; goto locked
			:: else -> goto loop
			fi
		:: else -> skip
		fi;
		if
		:: !queued ->
			cas(st + W, 1);
			if
			:: ok -> st = st + W; queued = 1; nw = 0
			:: else -> goto loop
			fi
		:: queued && starving && !(st & S) ->
			cas(st | S, 1);
			if
			:: ok -> st = st | S
			:: else -> goto loop
			fi
		:: else -> skip
		fi
	}
	park();
	if
	:: ret == QUEUED ->
		if
		:: atomic {
			chosen[id] ->		/* unparked */
				chosen[id] = 0;
				ret = OK;
				after_park()
		   }
		   goto loop
		:: timed ->			/* the deadline passes */
			d_step {
				expired = 1;
				if
				:: chosen[id] -> chosen[id] = 0; ret = OK
				:: else -> qremove(); ret = ETIMEDOUT
				fi
			}
		:: d_step {
			signals > 0 ->		/* a signal handler runs */
				signals--;
				if
				:: chosen[id] -> chosen[id] = 0; ret = OK
				:: else -> qremove(); ret = EINTR
				fi
		   }
		fi
	:: else -> skip
	fi;
	atomic {
		if
		:: ret == ETIMEDOUT -> goto deadline
		:: else -> after_park()
		fi
	}
	goto loop;

deadline:
	/*
	 * Take the mutex if it is free, else count ourselves out. (The
	 * load before the loop is left out: a CAS from a stale st fails
	 * and loads the word.)
	 */
dl:
	atomic {
		if
		:: !(st & L) ->
			taken();
			cas(nw, 0);
			if
			:: ok -> got_it(); res = 1; goto locked
			:: else -> goto dl
			fi
		:: else ->
			if
			:: st / W == 1 -> nw = (st - W) & ~S
			:: else -> nw = st - W
			fi;
			cas(nw, 0);
			if
			:: ok -> res = 0; st = 0; nw = 0; ret = 0
			:: else -> goto dl
			fi
		fi
	}
locked:
	skip
}

/*
 * mutex_unlock() by the holder. Locals are cleared once dead, so that
 * states differing only in dead values are not told apart.
 */
inline unlock()
{
	d_step {
		/* the critical section ends */
		assert(cs == 1 && !counted[id]);
		cs--
	};
ul:
	atomic {
		/* -EPERM for the holder: never (st may be stale: retried) */
		assert(word != st || (st & (L | H)) == L);
		handoff = (st & S) && st / W > 0;
		if
		:: handoff -> nw = st | H
		:: else -> nw = st & ~L
		fi;
		cas(nw, 0);
		if
		:: !ok -> goto ul
		:: else -> skip
		fi;
		if
		:: st / W == 0 -> goto unlocked
		:: st / W > 0 && !handoff -> goto release
		:: else -> handoff = 0
		fi
	}
	atomic {
		unpark(1);
		if
		:: n > 0 -> goto unlocked
		:: else -> skip
		fi;
		/* Nobody parked to take it: release it after all. */
		st = nw
	}
wd:
	atomic {
		if
		:: !(st & H) -> goto unlocked	/* claimed meanwhile */
		:: else ->
			cas(st & ~(H | L), 0);
			if
			:: ok -> skip
			:: else -> goto wd
			fi
		fi
	}
release:
	unpark(0);
unlocked:
	atomic { st = 0; nw = 0; n = 0; handoff = 0; ok = 0; res = 0 }
}

proctype thread(byte id; byte rounds; bool timed)
{
	byte st, nw, n, j, ret, r;
	bool ok, res, queued, starving, woken, front, expired, handoff;

	for (r : 1 .. rounds) {
		lock();
		if
		:: res -> unlock()
		:: else -> assert(timed)
		fi;
	}
	finished++
}

init
{
	q[0] = NONE; q[1] = NONE; q[2] = NONE;
	atomic {
		run thread(0, ROUNDS, 0);
		run thread(1, 1, 0);
		run thread(2, 1, 1)
	}
	/* Everybody got the mutex (or gave up): none sleeps for ever. */
	finished == NT;
	assert(word == 0 && qlen == 0 && cs == 0 && handoff_to == NONE &&
	       !chosen[0] && !chosen[1] && !chosen[2])
}
