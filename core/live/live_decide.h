/* SPDX-License-Identifier: MIT */
/*
 * The live engine's convergence decision, a pure function so that its edge
 * cases can be tested without a migration.
 */
#ifndef RMIG_CORE_LIVE_DECIDE_H
#define RMIG_CORE_LIVE_DECIDE_H

#include <stdint.h>

#include "rmig/live.h"

/*
 * After round @round (1-based) of at most @max_rounds: switch over when the
 * expected downtime is within @limit_ns and no switchover ack is missing;
 * otherwise go on while rounds are left; out of rounds, fail when @flags has
 * RMIG_LIVE_FAIL_ON_MAX_ROUNDS, else force, but only once no ack is missing:
 * a forced switchover overrides the downtime limit, never the destination's
 * acknowledgement, so until then it is CONTINUE (the engine bounds that wait
 * in time, with ack_wait_ms). Returns an enum rmig_live_decision.
 */
enum rmig_live_decision rmig_live_decide(uint64_t round, uint64_t max_rounds,
					 uint64_t expected_downtime_ns, uint64_t limit_ns,
					 unsigned int acks_outstanding, uint32_t flags);

/*
 * Expected downtime of sending @remaining bytes at @bandwidth_bps bytes/s:
 * 0 when nothing remains, UINT64_MAX when something remains but no bandwidth
 * has been measured; saturates instead of overflowing.
 */
uint64_t rmig_live_expected_ns(uint64_t remaining, uint64_t bandwidth_bps);

#endif
