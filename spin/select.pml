/*
 * Promela model of the claim protocol that completes channel waiters and
 * selects (kmod/chan.c): owners in states WAITING, CANCELLED or committed
 * to a case, every decision taken under the owner's own lock (grab: take
 * the lock, keep it if WAITING; commit or release: drop it); claim_pair()
 * grabbing two owners in address order (here: owner number) and
 * releasing the first when the second is final; one channel lock held at
 * a time, owner locks only inside one; entries queued case by case, each
 * after a try under the same lock; waiters that give up and cancel, and
 * learn the outcome under their own lock (owner_finish()).
 * Checked by 'make check' (spin/check.sh): exhaustive safety search.
 *
 * Nobody busy-waits: whoever meets an owner that another holds blocks on
 * its lock (a blocked statement here), and any holder may be descheduled
 * at any step (Promela interleaves freely), as a preempted holder of an
 * rt_mutex-based spinlock may be on PREEMPT_RT. That it then runs again
 * (priority inheritance) is the kernel's part; what the model checks is
 * that the waits cannot deadlock and that nothing is decided outside the
 * lock.
 *
 * Unbuffered channels A and B. Owners:
 *   0: select { A <- 0; B <- 0 }          (may give up)
 *   1: select { v := <-B; v := <-A }
 *   2: v := <-A                           (a plain receive)
 *   3: B <- 3                             (a plain send)
 *
 * Checked: every commit is made by the holder of the owner's lock on an
 * owner still WAITING (an owner completes exactly once); a receiver gets
 * the value of the sender it was paired with; no lock-wait cycle (a
 * process stuck waiting for a lock is an invalid end state; only
 * sleeping for a partner is a valid one); an owner that has returned
 * (its stack gone) is never locked again and nobody holds its lock when
 * it returns; and when nothing can move any more, no channel holds a
 * live sender and a live receiver of different owners (a lost wake-up).
 */
#define NOWN	4
#define NCH	2
#define QMAX	4
#define WAITING	10
#define CANCEL	12

byte state[NOWN];		/* WAITING, CANCEL, or committed case */
bool done[NOWN];
byte olock[NOWN];		/* chan_owner.lock: holder's _pid + 1, or 0 */
bool gone[NOWN];		/* the owner returned: its stack is gone */
byte got[NOWN];			/* receivers: value received, 255 = none */
byte sent_to[NOWN];		/* senders: owner that received, 255 = none */

/* Per owner and case: channel and direction. */
byte ncases[NOWN];
byte cchan[NOWN * 2];
bool csend[NOWN * 2];

/*
 * Queues: queue d of channel c (d = 0: senders, 1: receivers) holds
 * entries owner * 2 + case at q[Q(d, c) + i], i < qlen[d * NCH + c].
 */
#define Q(d, c)		(((d) * NCH + (c)) * QMAX)
#define QL(d, c)	qlen[(d) * NCH + (c)]
byte q[2 * NCH * QMAX];
byte qlen[2 * NCH];
bool chlock[NCH];

inline lock(c) { atomic { !chlock[c] -> chlock[c] = 1 } }
inline unlock(c) { chlock[c] = 0 }

/* spin_lock(&o->lock): blocks while another holds it. */
inline olock_take(o)
{
	atomic { olock[o] == 0 -> assert(!gone[o]); olock[o] = _pid + 1 }
}

inline olock_drop(o)
{
	assert(olock[o] == _pid + 1);
	olock[o] = 0
}

/* owner_grab(): take the lock; keep it if WAITING, else fail. */
inline grab(o, ok)
{
	olock_take(o);
	if
	:: state[o] == WAITING -> ok = 1
	:: else -> olock_drop(o); ok = 0
	fi
}

/* owner_release() */
inline release(o)
{
	assert(state[o] == WAITING);
	olock_drop(o)
}

/* owner_commit(): decided under the lock, which is then dropped. */
inline commit(o, k)
{
	atomic {
		assert(olock[o] == _pid + 1 && state[o] == WAITING);
		state[o] = k;
		done[o] = 1
	};
	olock_drop(o)
}

/* owner_finish(): cancel if still WAITING, else it was completed. */
inline finish(o)
{
	olock_take(o);
	if
	:: state[o] == WAITING -> state[o] = CANCEL
	:: else -> assert(done[o])
	fi;
	olock_drop(o)
}

/* Remove entry i of queue d of channel c. */
inline qdel(d, c, i)
{
	j = i;
	do
	:: j + 1 < QL(d, c) -> q[Q(d, c) + j] = q[Q(d, c) + j + 1]; j++
	:: else -> break
	od;
	QL(d, c)--
}

/*
 * Try case k of owner me on channel c, scanning the opposite queue d and
 * pairing: me is the sender iff d == 1. res: 1 done, 2 self gone, 0 none.
 */
inline try_case(me, k, c, d, res)
{
	i = 0;
	res = 0;
	do
	:: i >= QL(d, c) -> break
	:: i < QL(d, c) && q[Q(d, c) + i] / 2 == me -> i++
	:: i < QL(d, c) && q[Q(d, c) + i] / 2 != me ->
		peer = q[Q(d, c) + i] / 2;
		pk = q[Q(d, c) + i] % 2;
		/* claim_pair(me, peer): lower owner number first */
		if
		:: me < peer ->
			grab(me, ok1);
			if
			:: !ok1 -> res = 2; break
			:: else -> skip
			fi;
			grab(peer, ok2);
			if
			:: !ok2 -> release(me);	/* release first */
				qdel(d, c, i); goto next
			:: else -> skip
			fi
		:: else ->
			grab(peer, ok1);
			if
			:: !ok1 -> qdel(d, c, i); goto next
			:: else -> skip
			fi;
			grab(me, ok2);
			if
			:: !ok2 -> release(peer); res = 2; break
			:: else -> skip
			fi
		fi;
		qdel(d, c, i);
		if
		:: d == 1 -> got[peer] = me; sent_to[me] = peer
		:: else -> got[me] = peer; sent_to[peer] = me
		fi;
		commit(peer, pk);
		commit(me, k);
		res = 1;
		break;
next:		skip
	od
}

proctype owner(byte me; bool may_give_up)
{
	byte k, c, d, i, j, peer, pk, res;
	bool ok1, ok2;

	for (k : 0 .. ncases[me] - 1) {
		c = cchan[me * 2 + k];
		lock(c);
		if
		:: csend[me * 2 + k] -> d = 1
		:: else -> d = 0
		fi;
		try_case(me, k, c, d, res);
		if
		:: res == 0 ->		/* queue on our own side */
			q[Q(1 - d, c) + QL(1 - d, c)] = me * 2 + k;
			QL(1 - d, c)++
		:: else -> skip
		fi;
		unlock(c);
		if
		:: res != 0 -> break
		:: else -> skip
		fi
	}
	/*
	 * Sleep until completed, or give up (deadline, signal); then, or if
	 * a partner completed us while we were trying (res 2), learn the
	 * outcome under our own lock.
	 */
	if
	:: res == 1 -> skip
	:: res == 2 -> finish(me)
	:: res == 0 ->
end_asleep:	/* a waiter nobody pairs with may sleep for ever */
		if
		:: done[me] -> skip
		:: may_give_up -> skip
		fi;
		finish(me)
	fi;
	/* Unlink what is left queued, channel by channel. */
	for (c : 0 .. NCH - 1) {
		lock(c);
		for (d : 0 .. 1) {
			i = 0;
			do
			:: i >= QL(d, c) -> break
			:: i < QL(d, c) && q[Q(d, c) + i] / 2 == me -> qdel(d, c, i)
			:: i < QL(d, c) && q[Q(d, c) + i] / 2 != me -> i++
			od
		}
		unlock(c)
	};
	/* chan_select() returns: nobody may touch the owner any more. */
	atomic { assert(olock[me] == 0); gone[me] = 1 }
}

/* When nothing can move: no live sender and receiver left unmatched. */
active proctype watchdog()
{
	byte c, i, j;
	bool live_s, live_r;

	timeout ->
	for (c : 0 .. NCH - 1) {
		live_s = 0;
		live_r = 0;
		for (i : 0 .. QMAX - 1) {
			if
			:: i < QL(0, c) && state[q[Q(0, c) + i] / 2] == WAITING ->
				live_s = 1
			:: else -> skip
			fi;
			if
			:: i < QL(1, c) && state[q[Q(1, c) + i] / 2] == WAITING ->
				live_r = 1
			:: else -> skip
			fi
		}
		/* Owners 1 and 2 never give up: any pair would be different. */
		assert(!(live_s && live_r))
	}
}

init
{
	byte o;

	atomic {
		for (o : 0 .. NOWN - 1) {
			state[o] = WAITING;
			got[o] = 255;
			sent_to[o] = 255
		}
		ncases[0] = 2; cchan[0] = 0; csend[0] = 1; cchan[1] = 1; csend[1] = 1;
		ncases[1] = 2; cchan[2] = 1; csend[2] = 0; cchan[3] = 0; csend[3] = 0;
		ncases[2] = 1; cchan[4] = 0; csend[4] = 0;
		ncases[3] = 1; cchan[6] = 1; csend[6] = 1;
		run owner(0, 1);
		run owner(1, 0);
		run owner(2, 0);
		run owner(3, 0)
	}
	/* Pairings are mutual (checked when every owner has finished). */
end_init:
	(_nr_pr == 2);	/* only init and the watchdog are left */
	for (o : 0 .. NOWN - 1) {
		if
		:: got[o] != 255 -> assert(sent_to[got[o]] == o)
		:: else -> skip
		fi
	}
}
