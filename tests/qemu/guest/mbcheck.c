// SPDX-License-Identifier: MIT
/*
 * mbcheck: memcheck (memcheck.c) without Linux, for guests that must start
 * in a fraction of a second: QEMU running inside the rxe guests (nested
 * TCG) boots a kernel in minutes, this in milliseconds.
 *
 * A multiboot (v1) ELF32 kernel for QEMU's -kernel; it runs in 32-bit
 * protected mode without paging and writes to the first serial port. The
 * checks are memcheck's, and so are the lines it prints, so the host reads
 * both guests with the same code (migrate.py passes(), fail_lines()):
 *
 *   every page:  { index, generation, checksum, magic } then 508 words
 *                derived from (index, generation) alone;
 *   gen[]:       the generation each page must carry, itself in guest RAM.
 *
 * A pass rewrites every page (generation + 1), then verifies every page:
 * header, fill and checksum against gen[]. "memcheck: pass N ok" per pass,
 * "memcheck: tick" lines in between, "memcheck: FAIL ..." naming the page
 * on a mismatch, after which it halts.
 *
 * The command line (-append) may give mc_mb=N (region size in MiB, default
 * 32) and mc_ticks=N (tick lines per phase, default 4). The region starts
 * at 8 MiB and must fit in the RAM the boot loader reports.
 *
 * Build (no libc, no libgcc: 64-bit values are only added, multiplied,
 * shifted and compared, which gcc inlines on i386):
 *   gcc -m32 -O2 -ffreestanding -fno-pic -fno-stack-protector -nostdinc \
 *       -fno-asynchronous-unwind-tables -c mbcheck.c
 *   ld -m elf_i386 -T mbcheck.ld -o mbcheck.elf mbcheck.o
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MB_MAGIC 0x1BADB002u
#define MB_FLAG_MEMINFO 0x2u	/* mem_lower/mem_upper in the info */
#define MB_BOOTED 0x2BADB002u	/* in %eax at entry */
#define MB_INFO_MEM 0x1u
#define MB_INFO_CMDLINE 0x4u

#define MC_PAGE 4096u
#define MC_WORDS (MC_PAGE / 8u)
#define MC_HDR 4u
#define MC_MAGIC 0x6d656d636865636bULL /* "memcheck" */
#define MC_BASE (8u << 20)
#define COM1 0x3f8

struct mb_info {
	u32 flags;
	u32 mem_lower;
	u32 mem_upper; /* KiB above 1 MiB */
	u32 boot_device;
	u32 cmdline;
};

struct mc_page {
	u64 index;
	u64 gen;
	u64 csum;
	u64 magic;
	u64 fill[MC_WORDS - MC_HDR];
};

_Static_assert(sizeof(struct mc_page) == MC_PAGE, "one page per struct");

__attribute__((section(".multiboot"), aligned(4), used))
static const u32 mb_header[3] = { MB_MAGIC, MB_FLAG_MEMINFO, -(MB_MAGIC + MB_FLAG_MEMINFO) };

u8 mb_stack[16384] __attribute__((aligned(16)));

void mb_main(u32 magic, const struct mb_info *mbi);

/* The loader jumps here with %eax = MB_BOOTED and %ebx = the info; no stack. */
__asm__(".section .text.entry, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	mov $mb_stack + 16384, %esp\n"
	"	push %ebx\n"
	"	push %eax\n"
	"	call mb_main\n"
	"1:	cli\n"
	"	hlt\n"
	"	jmp 1b\n"
	".previous\n");

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
	u8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void putc_serial(char c)
{
	/* wait for the transmit holding register (QEMU's is always empty) */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (u8)c);
}

static void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

static void putu(u32 v)
{
	char buf[11];
	int n = 0;

	do {
		/* v / 10 by a multiply: no __udivsi3 needed (exact for u32) */
		u32 q = (u32)(((u64)v * 0xCCCCCCCDu) >> 35);

		buf[n++] = (char)('0' + (v - q * 10));
		v = q;
	} while (v);
	while (n)
		putc_serial(buf[--n]);
}

static __attribute__((noreturn)) void halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

static u64 mix64(u64 x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x;
}

static u64 fill_word(u64 index, u64 gen, u32 w)
{
	return mix64((index << 24) ^ (gen << 12) ^ w);
}

static u64 page_csum(const struct mc_page *p)
{
	u64 s = p->index * 0x9e3779b97f4a7c15ULL ^ p->gen;

	for (u32 w = 0; w < MC_WORDS - MC_HDR; w++)
		s = (s ^ p->fill[w]) * 0x100000001b3ULL;
	return s;
}

/* "mc_mb=32" in the command line: the number after NAME=, or @def */
static u32 cmdline_u32(const char *cmd, const char *name, u32 def)
{
	for (const char *p = cmd; p && *p; p++) {
		const char *a = p, *b = name;
		u32 v = 0;

		if (p != cmd && p[-1] != ' ')
			continue;
		while (*b && *a == *b)
			a++, b++;
		if (*b || *a != '=')
			continue;
		for (a++; *a >= '0' && *a <= '9'; a++)
			v = v * 10 + (u32)(*a - '0');
		return v;
	}
	return def;
}

static void fail(u32 pass, u32 page, const char *what, u32 word)
{
	puts_serial("memcheck: FAIL pass ");
	putu(pass);
	puts_serial(" page ");
	putu(page);
	puts_serial(": ");
	puts_serial(what);
	if (word != ~0u) {
		puts_serial(" word ");
		putu(word);
	}
	puts_serial("\n");
	halt();
}

static void tick(u32 i, u32 n, u32 ticks)
{
	/* u32 division: the native div, not libgcc's __udivdi3 */
	if (ticks && i && i * ticks / n != (i - 1) * ticks / n)
		puts_serial("memcheck: tick\n");
}

void mb_main(u32 magic, const struct mb_info *mbi)
{
	const char *cmd = 0;
	u32 mb, ticks, npages, ram_top;
	u32 *gen;
	struct mc_page *pages;

	puts_serial("memcheck: start (mbcheck, multiboot)\n");
	if (magic != MB_BOOTED || !(mbi->flags & MB_INFO_MEM)) {
		puts_serial("memcheck: FAIL not booted by a multiboot loader with memory info\n");
		halt();
	}
	if (mbi->flags & MB_INFO_CMDLINE)
		cmd = (const char *)mbi->cmdline;
	mb = cmdline_u32(cmd, "mc_mb", 32);
	ticks = cmdline_u32(cmd, "mc_ticks", 4);
	npages = mb << 8;
	ram_top = (1u << 20) + (mbi->mem_upper << 10);
	/* gen[] first, then the pages, from MC_BASE up */
	gen = (u32 *)MC_BASE;
	pages = (struct mc_page *)(MC_BASE + ((npages * 4 + MC_PAGE - 1) & ~(MC_PAGE - 1)));
	if (!mb || (u32)(pages + npages) > ram_top || (u32)(pages + npages) < MC_BASE) {
		puts_serial("memcheck: FAIL mc_mb=");
		putu(mb);
		puts_serial(" does not fit in the guest's RAM\n");
		halt();
	}
	for (u32 i = 0; i < npages; i++)
		gen[i] = 0;

	for (u32 pass = 1;; pass++) {
		for (u32 i = 0; i < npages; i++) {
			struct mc_page *p = &pages[i];
			u64 g = gen[i] + 1;

			for (u32 w = 0; w < MC_WORDS - MC_HDR; w++)
				p->fill[w] = fill_word(i, g, w);
			p->index = i;
			p->gen = g;
			p->magic = MC_MAGIC;
			p->csum = page_csum(p);
			gen[i] = (u32)g;
			tick(i, npages, ticks);
		}
		for (u32 i = 0; i < npages; i++) {
			const struct mc_page *p = &pages[i];

			if (p->index != i || p->gen != gen[i] || p->magic != MC_MAGIC)
				fail(pass, i, "header", ~0u);
			for (u32 w = 0; w < MC_WORDS - MC_HDR; w++)
				if (p->fill[w] != fill_word(i, gen[i], w))
					fail(pass, i, "fill", w);
			if (p->csum != page_csum(p))
				fail(pass, i, "checksum", ~0u);
			tick(i, npages, ticks);
		}
		puts_serial("memcheck: pass ");
		putu(pass);
		puts_serial(" ok (");
		putu(mb);
		puts_serial(" MiB)\n");
	}
}
