// SPDX-License-Identifier: MIT
/*
 * The rdma transport without hardware: the registry and main of the fault
 * tests. The fake verbs and the one-conn fixture are in
 * rdma_faults_fixture.c, the tests in test_rdma_faults_{mr,sq,stream,cm}.c.
 *
 *   test_rdma_faults [GROUP]   GROUP: mr, sq, stream or cm; none: all
 *
 * meson runs each group as its own test, rdma_faults_GROUP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rdma_faults_fixture.h"

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static const struct {
	const char *group;
	struct CMUnitTest test;
} all[] = {
	{ "mr", T(test_reg_enomem_names_memlock) },
	{ "mr", T(test_memlock_verdict) },
	{ "mr", T(test_slices_and_lookup) },
	{ "mr", T(test_mrt_rejects_malformed) },
	{ "mr", T(test_mrt_encode_no_room) },
	{ "mr", T(test_mrt_streamed) },
	{ "sq", T(test_sq_depth_never_exceeded) },
	{ "sq", T(test_inflight_bytes_bounded) },
	{ "sq", T(test_inflight_big_write_alone) },
	{ "sq", T(test_write_cuts_and_gathers) },
	{ "sq", T(test_segment_checks) },
	{ "sq", T(test_wc_errors) },
	{ "sq", T(test_post_send_failure) },
	{ "stream", T(test_credits_bound_sends) },
	{ "stream", T(test_recv_reassembles) },
	{ "stream", T(test_credit_return_message) },
	{ "stream", T(test_recv_protocol_errors) },
	{ "stream", T(test_recv_after_peer_close) },
	{ "stream", T(test_shutdown_fails_calls) },
	{ "stream", T(test_recv_pages_is_enosys) },
	{ "cm", T(test_no_device) },
	{ "cm", T(test_cm_event_errors) },
	{ "cm", T(test_cm_private_data) },
};

int main(int argc, char **argv)
{
	const char *group = argc > 1 ? argv[1] : NULL;
	struct CMUnitTest tests[sizeof(all) / sizeof(all[0])];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!group || !strcmp(group, all[i].group))
			tests[n++] = all[i].test;
	if (!n) {
		fprintf(stderr, "test_rdma_faults: no group '%s' (mr, sq, stream, cm)\n", group);
		return 2;
	}
	return _cmocka_run_group_tests(group ? group : "rdma_faults", tests, n, NULL, NULL);
}
