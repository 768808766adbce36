// SPDX-License-Identifier: MIT
/*
 * The file transport's faults: connect refuses without touching an
 * existing file (no path; a filesystem without O_DIRECT), and the disk
 * fills up while saving. Both need root for a private mount namespace
 * (ramfs, a 2 MiB tmpfs) in a child process.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rmig/rmig.h"

#include "file_fixture.h"
#include "helpers.h"

/*
 * Run @fn(@arg) in a child process, whose mount namespace it may change:
 * NULL passes, a string is what went wrong (outside cmocka's asserts), and
 * fails the test as "@what: string".
 */
static void in_child(const char *(*fn)(const void *arg), const void *arg, const char *what)
{
	char why[700] = {0};
	int pfd[2], st;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *err;

		close(pfd[0]);
		err = fn(arg);
		if (err && write(pfd[1], err, strlen(err)) < 0)
			_exit(2);
		_exit(err ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], why, sizeof(why) - 1) < 0)
		why[0] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("%s: %s", what, why[0] ? why : "the child crashed");
}

/*
 * The O_DIRECT refusal, run in @dirpath whose filesystem refuses O_DIRECT:
 * connect fails naming O_DIRECT, an existing file keeps its bytes, and a
 * file it had to create is gone again. Returns NULL or what went wrong
 * (this runs in a child, outside cmocka's asserts).
 */
static const char *direct_refusal(const char *dirpath, const struct rmig_block_desc *d)
{
	struct rmig_opts o;
	struct rmig_src *src;
	char path[4200], uri[4300], buf[8] = {0};
	int fd, ret;

	snprintf(path, sizeof(path), "%s/rmig-nodirect-%d", dirpath, (int)getpid());
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
	if (fd >= 0 || errno != EINVAL) {
		if (fd >= 0)
			close(fd);
		unlink(path);
		return "the filesystem took O_DIRECT after all";
	}
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0 || write(fd, "keepme!", 8) != 8)
		return "cannot write the file to keep";
	close(fd);
	rmig_opts_init(&o);
	o.flags = RMIG_F_DIRECT_IO;
	snprintf(uri, sizeof(uri), "file:%s", path);
	if (rmig_src_create(&o, &src) || rmig_src_add_block(src, d))
		return "source set-up failed";
	ret = rmig_src_connect(src, uri);
	if (ret != -EINVAL || !strstr(rmig_src_error(src), "O_DIRECT"))
		return "connect did not refuse naming O_DIRECT";
	rmig_src_destroy(src);
	fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) != 8 || strcmp(buf, "keepme!"))
		return "the existing file was touched";
	close(fd);
	unlink(path);

	if (rmig_src_create(&o, &src) || rmig_src_add_block(src, d))
		return "source set-up failed";
	ret = rmig_src_connect(src, uri);
	rmig_src_destroy(src);
	if (ret != -EINVAL)
		return "connect to a new file did not refuse";
	if (access(path, F_OK) == 0)
		return "the file connect created was left behind";
	return NULL;
}

/* In the child: a filesystem without O_DIRECT, then direct_refusal() there. */
static const char *nodirect_child(const void *arg)
{
	const char *given = getenv("RMIG_TEST_NODIRECT_DIR");
	char mnt[] = "/tmp/rmig-ramfs-XXXXXX";
	const char *dirpath = given, *err;

	if (!given || !*given) {
		if (unshare(CLONE_NEWNS) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || !mkdtemp(mnt))
			return "no private mount namespace (needs root; or set RMIG_TEST_NODIRECT_DIR to a directory on a filesystem without O_DIRECT)";
		if (mount("ramfs", mnt, "ramfs", 0, NULL)) {
			rmdir(mnt);
			return "cannot mount a ramfs (needs root; or set RMIG_TEST_NODIRECT_DIR)";
		}
		dirpath = mnt;
	}
	err = direct_refusal(dirpath, arg);
	if (dirpath == mnt) {
		umount(mnt);
		rmdir(mnt);
	}
	return err;
}

/*
 * connect refuses without touching an existing file: no path; no O_DIRECT.
 * A filesystem without O_DIRECT: RMIG_TEST_NODIRECT_DIR if set, else a
 * ramfs mounted in a private mount namespace of a child (root; tmpfs has
 * O_DIRECT since Linux 6.6, ramfs has none). Not a skip when neither
 * works: a case that cannot run has not passed.
 */
static void test_connect_refused(void **state)
{
	static const struct layout l[] = {{"ram", 1u << 20, 4096}};
	const char *given = getenv("RMIG_TEST_NODIRECT_DIR");
	struct rmig_opts o;
	struct rmig_src *src;
	struct rmig_block_desc d;
	struct ram a;

	(void)state;
	ram_map(&a, l, 1);
	d = (struct rmig_block_desc){"ram", a.host[0], l[0].length, l[0].page_size};
	rmig_opts_init(&o);
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &d), 0);
	assert_int_equal(rmig_src_connect(src, "file:"), -EINVAL);
	assert_non_null(strstr(rmig_src_error(src), "no path"));
	rmig_src_destroy(src);

	in_child(nodirect_child, &d, "O_DIRECT refusal");
	print_message("    O_DIRECT refused on %s, file kept, nothing left behind\n",
		      given && *given ? given : "a private ramfs");
	ram_unmap(&a);
}

/*
 * The disk fills up while saving (a 2 MiB tmpfs, 16 MiB of RAM), in a
 * child's private mount namespace (root): the save must fail naming the
 * full disk, leave source RAM as it was, and leave no file a load would
 * take as complete. Returns NULL or what went wrong.
 */
static const char *disk_full_save(const char *mnt)
{
	static const struct layout l[] = {{"pc.ram", 16u << 20, 4096}};
	static char why[600];
	struct ram a, b;
	struct rmig_opts o;
	struct rmig_src *src;
	char path[4200], uri[4300], lwhy[512];
	uint64_t before, after;
	int ret;

	ram_pair(&a, &b, l, 1, 77, 0);
	before = h_hash(a.host[0], l[0].length);
	snprintf(path, sizeof(path), "%s/full.rmig", mnt);
	snprintf(uri, sizeof(uri), "file:%s", path);
	rmig_opts_init(&o);
	o.channels = 2;
	if (rmig_src_create(&o, &src) ||
	    rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", a.host[0], l[0].length,
							       l[0].page_size}) < 0)
		return "source set-up failed";
	ret = rmig_src_connect(src, uri);
	for (uint64_t off = 0; !ret && off < l[0].length; off += 4096)
		ret = rmig_src_queue_page(src, 0, off);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	if (!ret)
		return "saving 16 MiB to a 2 MiB filesystem succeeded";
	if (!strstr(rmig_src_error(src), "No space left")) {
		snprintf(why, sizeof(why), "the error does not say the disk is full: %s",
			 rmig_src_error(src));
		return why;
	}
	print_message("    disk full: %s\n", rmig_src_error(src));
	rmig_src_destroy(src);
	after = h_hash(a.host[0], l[0].length);
	if (after != before)
		return "source RAM changed";
	/* whatever is on disk must not load as a migration */
	if (access(path, F_OK) == 0 && load(path, &b, 2, 0, NULL, NULL, lwhy, sizeof(lwhy)) == 0)
		return "the file of a failed save loaded";
	ram_unmap(&a);
	ram_unmap(&b);
	return NULL;
}

/* In the child: a 2 MiB tmpfs in a private mount namespace, then disk_full_save() there. */
static const char *disk_full_child(const void *arg)
{
	char mnt[] = "/tmp/rmig-full-XXXXXX";
	const char *err;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    !mkdtemp(mnt))
		return "no private mount namespace (needs root)";
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m")) {
		rmdir(mnt);
		return "cannot mount a 2 MiB tmpfs (needs root)";
	}
	err = disk_full_save(mnt);
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	return err;
}

static void test_disk_full(void **state)
{
	(void)state;
	in_child(disk_full_child, NULL, "disk full");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_connect_refused),
	};

	file_fixture_init();
	return cmocka_run_group_tests_name("file transport: faults", tests, NULL, NULL);
}
