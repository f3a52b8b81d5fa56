// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libgosync: channels. Every operation is one ioctl on the channel fd;
 * the kernel holds the buffer and the wait queues.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "gosync.h"
#include "internal.h"

struct gs_chan {
	int fd;
	uint32_t elem_size;
	uint32_t capacity;
};

/* Create a channel (or timer) with @cmd and wrap its fd. */
static int chan_create(gs_chan **chp, unsigned long cmd, void *arg)
{
	int fd = gs_create_object(cmd, arg);
	int err;

	if (fd < 0)
		return fd;
	err = gs_chan_from_fd(chp, fd);
	if (err)
		close(fd);
	return err;
}

int gs_chan_make(gs_chan **chp, size_t elem_size, uint32_t capacity)
{
	struct gosync_chan_create arg = {
		.elem_size = (uint32_t)elem_size, .capacity = capacity,
	};

	if (elem_size > GOSYNC_CHAN_ELEM_MAX)
		return -EINVAL;
	return chan_create(chp, GOSYNC_IOC_CHAN_CREATE, &arg);
}

int gs_chan_from_fd_sized(gs_chan **chp, int fd, size_t elem_size)
{
	struct gosync_chan_status st;
	gs_chan *ch;

	if (ioctl(fd, GOSYNC_IOC_CHAN_STATUS, &st) < 0)
		return errno == EINVAL ? -ENOTTY : -errno;
	if (elem_size != SIZE_MAX && st.elem_size != elem_size)
		return -EINVAL;
	ch = malloc(sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->fd = fd;
	ch->elem_size = st.elem_size;
	ch->capacity = st.capacity;
	*chp = ch;
	return 0;
}

int gs_chan_from_fd(gs_chan **chp, int fd)
{
	return gs_chan_from_fd_sized(chp, fd, SIZE_MAX);
}

static int xfer(gs_chan *ch, unsigned long cmd, const void *value,
		uint64_t deadline, unsigned int flags)
{
	struct gosync_chan_xfer arg = {
		.value = (uintptr_t)value, .deadline = deadline, .flags = flags,
	};
	int ret = ioctl(ch->fd, cmd, &arg);

	return ret < 0 ? -errno : ret;
}

int gs_chan_send_until(gs_chan *ch, const void *value, uint64_t deadline,
		       unsigned int flags)
{
	if (flags & ~GS_CLOCK_REALTIME)
		return -EINVAL;
	return xfer(ch, GOSYNC_IOC_CHAN_SEND, value, deadline, flags);
}

int gs_chan_send(gs_chan *ch, const void *value)
{
	return xfer(ch, GOSYNC_IOC_CHAN_SEND, value, GS_FOREVER, 0);
}

int gs_chan_try_send(gs_chan *ch, const void *value)
{
	return xfer(ch, GOSYNC_IOC_CHAN_SEND, value, GS_FOREVER,
		    GOSYNC_CHAN_TRY);
}

int gs_chan_recv_until(gs_chan *ch, void *value, uint64_t deadline,
		       unsigned int flags)
{
	if (flags & ~GS_CLOCK_REALTIME)
		return -EINVAL;
	return xfer(ch, GOSYNC_IOC_CHAN_RECV, value, deadline, flags);
}

int gs_chan_recv(gs_chan *ch, void *value)
{
	return xfer(ch, GOSYNC_IOC_CHAN_RECV, value, GS_FOREVER, 0);
}

int gs_chan_try_recv(gs_chan *ch, void *value)
{
	return xfer(ch, GOSYNC_IOC_CHAN_RECV, value, GS_FOREVER,
		    GOSYNC_CHAN_TRY);
}

int gs_chan_close(gs_chan *ch)
{
	return ioctl(ch->fd, GOSYNC_IOC_CHAN_CLOSE) < 0 ? -errno : 0;
}

int gs_chan_status(gs_chan *ch, struct gosync_chan_status *st)
{
	return ioctl(ch->fd, GOSYNC_IOC_CHAN_STATUS, st) < 0 ? -errno : 0;
}

int gs_chan_len(gs_chan *ch)
{
	struct gosync_chan_status st;
	int err = gs_chan_status(ch, &st);

	return err ? err : (int)st.len;
}

uint32_t gs_chan_cap(const gs_chan *ch)
{
	return ch->capacity;
}

size_t gs_chan_elem_size(const gs_chan *ch)
{
	return ch->elem_size;
}

int gs_chan_fd(const gs_chan *ch)
{
	return ch->fd;
}

void gs_chan_destroy(gs_chan *ch)
{
	if (!ch)
		return;
	close(ch->fd);
	free(ch);
}

int gs_select(gs_case *cases, size_t n, unsigned int flags, uint64_t deadline)
{
	struct gosync_select_case kcases[GOSYNC_SELECT_MAX_CASES];
	struct gosync_select arg = {
		.cases = (uintptr_t)kcases, .ncases = (uint32_t)n,
		.flags = flags, .deadline = deadline,
	};
	int dev = gs_device_fd();

	if (dev < 0)
		return dev;
	if (n > GOSYNC_SELECT_MAX_CASES ||
	    (flags & ~(GS_SELECT_DEFAULT | GS_CLOCK_REALTIME)))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		kcases[i].fd = cases[i].ch ? cases[i].ch->fd : GOSYNC_SELECT_NIL;
		kcases[i].op = (uint32_t)cases[i].op;
		kcases[i].value = (uintptr_t)cases[i].value;
	}
	if (ioctl(dev, GOSYNC_IOC_SELECT, &arg) < 0)
		return -errno;
	if (cases[arg.index].op == GS_OP_RECV)
		cases[arg.index].ok = arg.ok;
	return (int)arg.index;
}

int gs_select_ctx(gs_case *cases, size_t n, gs_ctx *ctx)
{
	gs_case all[GOSYNC_SELECT_MAX_CASES];
	struct gs_ctx_wait w;
	int ret;

	if (n >= GOSYNC_SELECT_MAX_CASES)
		return -EINVAL;
	ret = gs_ctx_wait_begin(ctx, &w);
	if (ret)
		return ret;
	/* The cases, and one more: receive from Done (nil if none). */
	for (size_t i = 0; i < n; i++)
		all[i] = cases[i];
	all[n] = gs_case_recv(gs_ctx_done(ctx), NULL);
	ret = gs_select(all, n + 1, 0, w.deadline);
	if (ret == (int)n) {
		/* Done is closed, maybe by another process's copy. */
		ret = gs_ctx_err(ctx);
		return ret ? ret : -ECANCELED;
	}
	if (ret < 0)
		return gs_ctx_wait_end(ctx, ret);
	cases[ret].ok = all[ret].ok;
	return ret;
}

int gs_chan_send_ctx(gs_chan *ch, const void *value, gs_ctx *ctx)
{
	gs_case c = gs_case_send(ch, value);
	int ret = gs_select_ctx(&c, 1, ctx);

	return ret > 0 ? 0 : ret;
}

int gs_chan_recv_ctx(gs_chan *ch, void *value, gs_ctx *ctx)
{
	gs_case c = gs_case_recv(ch, value);
	int ret = gs_select_ctx(&c, 1, ctx);

	return ret < 0 ? ret : c.ok;
}

static int timer_create(gs_chan **timerp, uint64_t when, uint64_t period,
			unsigned int flags)
{
	struct gosync_timer_set set = {
		.when = when, .period = period, .flags = flags,
	};

	return chan_create(timerp, GOSYNC_IOC_TIMER_CREATE, &set);
}

int gs_after(gs_chan **timerp, uint64_t ns)
{
	return timer_create(timerp, gs_deadline_in(ns), 0, 0);
}

int gs_timer_at(gs_chan **timerp, uint64_t when, unsigned int flags)
{
	return timer_create(timerp, when, 0, flags);
}

int gs_tick(gs_chan **tickerp, uint64_t period_ns)
{
	if (period_ns < GOSYNC_TIMER_MIN_PERIOD)
		return -EINVAL;
	return timer_create(tickerp, gs_deadline_in(period_ns), period_ns, 0);
}

int gs_timer_stop(gs_chan *timer)
{
	int ret = ioctl(timer->fd, GOSYNC_IOC_TIMER_STOP);

	return ret < 0 ? -errno : ret;
}

static int timer_reset(gs_chan *timer, uint64_t ns, uint64_t period)
{
	struct gosync_timer_set set = {
		.when = gs_deadline_in(ns), .period = period,
	};
	int ret = ioctl(timer->fd, GOSYNC_IOC_TIMER_RESET, &set);

	return ret < 0 ? -errno : ret;
}

int gs_timer_reset(gs_chan *timer, uint64_t ns)
{
	return timer_reset(timer, ns, 0);
}

int gs_ticker_reset(gs_chan *ticker, uint64_t period_ns)
{
	if (period_ns < GOSYNC_TIMER_MIN_PERIOD)
		return -EINVAL;
	return timer_reset(ticker, period_ns, period_ns);
}
