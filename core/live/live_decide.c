// SPDX-License-Identifier: MIT
#include "core/live/live_decide.h"

enum rmig_live_decision rmig_live_decide(uint64_t round, uint64_t max_rounds,
					 uint64_t expected_downtime_ns, uint64_t limit_ns,
					 unsigned int acks_outstanding, uint32_t flags)
{
	if (!acks_outstanding && expected_downtime_ns <= limit_ns)
		return RMIG_LIVE_SWITCHOVER;
	if (round < max_rounds)
		return RMIG_LIVE_CONTINUE;
	if (flags & RMIG_LIVE_FAIL_ON_MAX_ROUNDS)
		return RMIG_LIVE_FAIL;
	return acks_outstanding ? RMIG_LIVE_CONTINUE : RMIG_LIVE_FORCE;
}

uint64_t rmig_live_expected_ns(uint64_t remaining, uint64_t bandwidth_bps)
{
	uint64_t whole, ns;

	if (!remaining)
		return 0;
	if (!bandwidth_bps)
		return UINT64_MAX;
	whole = remaining / bandwidth_bps;
	if (whole >= UINT64_MAX / 1000000000u)
		return UINT64_MAX;
	/* the remainder is below one second's worth: double is exact enough */
	ns = whole * 1000000000u +
	     (uint64_t)((double)(remaining % bandwidth_bps) * 1e9 / (double)bandwidth_bps);
	return ns;
}
