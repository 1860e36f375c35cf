/*
 * The hull test guest: a freestanding 32-bit program entered through PVH. It prints over
 * the 8250 UART at 0x3f8, finds a virtio-blk device on the virtio-mmio transport
 * (virtio 1.2 §4.2.2), reads sector 0 and checks the pattern the test wrote there,
 * writes another pattern to sector 1, flushes, reports each step on the serial line and
 * ends through the exit port at 0xf4 with a status (0 is success).
 *
 * Built with -DPRINT_ONLY it prints its greeting and exits at once: benchmarks time it
 * (it prints the same bytes under every VMM), and VMMs without virtio-mmio can run it.
 *
 * The patterns and exit statuses are mirrored in vmm/testguest/testguest.go (package testguest): keep them
 * in step.
 */
#include <stdint.h>

/* Exit statuses, written to the exit port. */
enum {
	EXIT_PASS = 0,
	EXIT_NODEV = 2,	   /* no virtio-blk device found */
	EXIT_INIT = 3,	   /* device refused VERSION_1 or FEATURES_OK, or queue unusable */
	EXIT_READ = 4,	   /* reading sector 0 failed */
	EXIT_PATTERN = 5,  /* sector 0 does not hold the pattern */
	EXIT_WRITE = 6,	   /* writing sector 1 failed on a writable disk */
	EXIT_FLUSH = 7,	   /* flush failed */
	EXIT_ROWRITE = 8,  /* a read-only disk accepted the write */
	EXIT_TIMEOUT = 9,  /* the device did not complete a request */
};

#define EXIT_PORT 0xf4
#define COM1 0x3f8
#define I8042_CMD 0x64

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void barrier(void) { __asm__ volatile("lock; orl $0, (%%esp)" ::: "memory"); }

static inline uint32_t rd32(uint32_t a) { return *(volatile uint32_t *)a; }
static inline void wr32(uint32_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

/* --- serial ---------------------------------------------------------------------- */

static void putc(char c)
{
	/* Wait for THRE (LSR bit 5), with a cap: a UART that never drains must not hang us. */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (uint8_t)c);
}

static void puts(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			putc('\r');
		putc(*s);
	}
}

static void __attribute__((unused)) puthex(uint32_t v)
{
	puts("0x");
	for (int s = 28; s >= 0; s -= 4)
		putc("0123456789abcdef"[(v >> s) & 0xf]);
}

static void putdec(uint32_t v)
{
	char b[11];
	int i = 10;
	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v && i > 0);
	puts(&b[i]);
}

/* finish reports the status and ends the run. A pass resets through the i8042 (a clean
 * stop, exit status 0, under hull's VMM and any VMM with reboot=k semantics); QEMU's
 * microvm has no i8042 and ignores that write. Then the exit port (hull's VMM and QEMU's
 * isa-debug-exit: exit status (v<<1)|1), then a triple fault if nothing listened. */
extern void triple_fault(void) __attribute__((noreturn));
static void __attribute__((noreturn)) finish(uint8_t status)
{
	if (status == EXIT_PASS) {
		puts("testguest: PASS\n");
		outb(I8042_CMD, 0xfe);
	} else {
		puts("testguest: FAIL status=");
		putdec(status);
		puts("\n");
	}
	outb(EXIT_PORT, status);
	triple_fault();
}

/* --- PVH start info (xen/include/public/arch-x86/hvm/start_info.h) ---------------- */

struct start_info { /* mirrors struct hvm_start_info */
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
#define START_INFO_MAGIC 0x336ec578

/* cmdline returns the kernel command line, or 0. Only the low 4 GiB are reachable. */
__attribute__((unused)) static const char *cmdline(const struct start_info *si)
{
	if (!si || si->magic != START_INFO_MAGIC || !si->cmdline_paddr || si->cmdline_paddr >> 32)
		return 0;
	return (const char *)(uint32_t)si->cmdline_paddr;
}

static void __attribute__((unused)) print_cmdline(const char *c)
{
	puts("testguest: cmdline=\"");
	for (int i = 0; c && c[i] && i < 256; i++)
		putc(c[i]);
	puts("\"\n");
}

#ifndef PRINT_ONLY

/* --- virtio-mmio (virtio 1.2 §4.2.2) ---------------------------------------------- */

enum {
	R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE = 0x008,
	R_DEVFEAT = 0x010, R_DEVFEATSEL = 0x014, R_DRVFEAT = 0x020, R_DRVFEATSEL = 0x024,
	R_QSEL = 0x030, R_QMAX = 0x034, R_QNUM = 0x038, R_QREADY = 0x044, R_QNOTIFY = 0x050,
	R_ISR = 0x060, R_ISRACK = 0x064, R_STATUS = 0x070,
	R_QDESC = 0x080, R_QDRIVER = 0x090, R_QDEVICE = 0x0a0,
	R_CONFIG = 0x100,
};
#define MMIO_MAGIC 0x74726976 /* "virt" */
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 128
#define F_BLK_RO (1u << 5)
#define F_BLK_FLUSH (1u << 9)
#define F_VERSION_1 (1u << 0) /* bit 32: word 1, bit 0 */

/* Candidate transport bases: hull's VMM (0xd0000000, 4 KiB apart), then QEMU microvm
 * (0xfeb00000, 512 bytes apart). A virtio_mmio.device= on the command line comes first. */
static const struct {
	uint32_t base, stride, n;
} windows[] = {
	{0xd0000000, 0x1000, 8},
	{0xfeb00000, 0x200, 24},
};

#define QSIZE 8
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define D_NEXT 1
#define D_WRITE 2

static struct {
	struct desc desc[QSIZE] __attribute__((aligned(16)));
	struct {
		uint16_t flags, idx, ring[QSIZE], used_event;
	} avail __attribute__((aligned(2)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QSIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
} q __attribute__((aligned(4096)));

static struct {
	uint32_t type, reserved;
	uint64_t sector;
} req;
static uint8_t buf[512] __attribute__((aligned(512)));
static volatile uint8_t status;
static uint16_t last_used;

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8 };

static int is_blk(uint32_t b)
{
	return rd32(b + R_MAGIC) == MMIO_MAGIC && rd32(b + R_VERSION) == 2 && rd32(b + R_DEVICE) == 2;
}

/* parse_hex reads a hex number after "0x"; it stops at the first other character. */
static uint32_t parse_hex(const char *s)
{
	uint32_t v = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (int i = 0; i < 8; i++, s++) {
		char c = *s;
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v << 4 | (uint32_t)(c - 'A' + 10);
		else
			break;
	}
	return v;
}

/* find_blk returns the base of the first virtio-blk transport: those the command line
 * declares (virtio_mmio.device=<size>@<base>:<irq>), else the known windows. */
static uint32_t find_blk(const char *c)
{
	static const char key[] = "virtio_mmio.device=";
	for (int i = 0; c && c[i] && i < 4096; i++) {
		int k = 0;
		while (key[k] && c[i + k] == key[k])
			k++;
		if (key[k])
			continue;
		int j = i + k;
		while (c[j] && c[j] != '@' && c[j] != ' ' && j < i + k + 32)
			j++;
		if (c[j] == '@') {
			uint32_t b = parse_hex(&c[j + 1]);
			if (b && is_blk(b))
				return b;
		}
	}
	for (unsigned w = 0; w < sizeof windows / sizeof windows[0]; w++)
		for (uint32_t i = 0; i < windows[w].n; i++) {
			uint32_t b = windows[w].base + i * windows[w].stride;
			if (is_blk(b))
				return b;
		}
	return 0;
}

/* submit places a chain of n descriptors on the queue, notifies and polls the used ring.
 * It returns the status byte the device wrote, or -1 when the device never answered. */
static int submit(uint32_t base, int n)
{
	status = 0xff;
	for (int i = 0; i < n - 1; i++) {
		q.desc[i].flags |= D_NEXT;
		q.desc[i].next = (uint16_t)(i + 1);
	}
	q.avail.ring[q.avail.idx % QSIZE] = 0;
	barrier();
	q.avail.idx++;
	barrier();
	wr32(base + R_QNOTIFY, 0);
	for (uint32_t spin = 0; spin < 20000000; spin++) {
		if (*(volatile uint16_t *)&q.used.idx != last_used) {
			last_used++;
			barrier();
			wr32(base + R_ISRACK, rd32(base + R_ISR));
			return status;
		}
	}
	return -1;
}

/* request sends one request of type t on sector s. A data length of 0 sends no data
 * descriptor (flush). in says the device writes the data. */
static int request(uint32_t base, uint32_t t, uint32_t s, uint32_t len, int in)
{
	req.type = t;
	req.reserved = 0;
	req.sector = s;
	int n = 0;
	q.desc[n++] = (struct desc){(uint32_t)&req, sizeof req, 0, 0};
	if (len)
		q.desc[n++] = (struct desc){(uint32_t)buf, len, in ? D_WRITE : 0, 0};
	q.desc[n++] = (struct desc){(uint32_t)&status, 1, D_WRITE, 0};
	return submit(base, n);
}

/* init_blk runs the driver initialization of virtio 1.2 §3.1.1 with one queue of QSIZE.
 * It returns the device features the driver accepted, with bit 31 set on failure. */
static uint32_t init_blk(uint32_t b)
{
	wr32(b + R_STATUS, 0);
	wr32(b + R_STATUS, S_ACK);
	wr32(b + R_STATUS, S_ACK | S_DRIVER);
	wr32(b + R_DEVFEATSEL, 1);
	uint32_t hi = rd32(b + R_DEVFEAT);
	wr32(b + R_DEVFEATSEL, 0);
	uint32_t lo = rd32(b + R_DEVFEAT) & (F_BLK_RO | F_BLK_FLUSH);
	if (!(hi & F_VERSION_1))
		return 1u << 31;
	wr32(b + R_DRVFEATSEL, 1);
	wr32(b + R_DRVFEAT, F_VERSION_1);
	wr32(b + R_DRVFEATSEL, 0);
	wr32(b + R_DRVFEAT, lo);
	wr32(b + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(b + R_STATUS) & S_FEATURES_OK))
		return 1u << 31;
	wr32(b + R_QSEL, 0);
	uint32_t max = rd32(b + R_QMAX);
	if (max < QSIZE || rd32(b + R_QREADY)) {
		wr32(b + R_STATUS, S_FAILED);
		return 1u << 31;
	}
	wr32(b + R_QNUM, QSIZE);
	wr32(b + R_QDESC, (uint32_t)q.desc);
	wr32(b + R_QDESC + 4, 0);
	wr32(b + R_QDRIVER, (uint32_t)&q.avail);
	wr32(b + R_QDRIVER + 4, 0);
	wr32(b + R_QDEVICE, (uint32_t)&q.used);
	wr32(b + R_QDEVICE + 4, 0);
	wr32(b + R_QREADY, 1);
	wr32(b + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return lo;
}

/* Sector 0 holds "HULLDISK" then byte i = (i * 7 + 1) & 0xff; the guest writes
 * "GUESTWRT" then byte i = (i * 13 + 5) & 0xff to sector 1. */
static int check_sector0(void)
{
	static const char magic[] = "HULLDISK";
	for (int i = 0; i < 8; i++)
		if (buf[i] != (uint8_t)magic[i])
			return 0;
	for (int i = 8; i < 512; i++)
		if (buf[i] != (uint8_t)(i * 7 + 1))
			return 0;
	return 1;
}

static void fill_sector1(void)
{
	static const char magic[] = "GUESTWRT";
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)magic[i];
	for (int i = 8; i < 512; i++)
		buf[i] = (uint8_t)(i * 13 + 5);
}

static void report(const char *what, int st)
{
	puts("testguest: ");
	puts(what);
	if (st == 0)
		puts(" ok\n");
	else if (st < 0)
		puts(" timeout\n");
	else {
		puts(" status=");
		putdec((uint32_t)st);
		puts("\n");
	}
}

static void __attribute__((noreturn)) run_disk(const char *c)
{
	uint32_t b = find_blk(c);
	if (!b) {
		puts("testguest: no virtio-blk device\n");
		finish(EXIT_NODEV);
	}
	uint32_t feat = init_blk(b);
	if (feat >> 31) {
		puts("testguest: virtio-blk init failed at ");
		puthex(b);
		puts("\n");
		finish(EXIT_INIT);
	}
	int ro = (feat & F_BLK_RO) != 0;
	puts("testguest: virtio-blk at ");
	puthex(b);
	puts(" capacity=");
	putdec(rd32(b + R_CONFIG)); /* low word of capacity, in sectors */
	puts(ro ? " ro=1" : " ro=0");
	puts(feat & F_BLK_FLUSH ? " flush=1\n" : " flush=0\n");

	/* GET_ID: the serial is up to 20 bytes, NUL-padded; an old device may refuse it. */
	for (int i = 0; i < 21; i++)
		buf[i] = 0;
	int st = request(b, T_GET_ID, 0, 20, 1);
	if (st < 0)
		finish(EXIT_TIMEOUT);
	if (st == 0) {
		puts("testguest: id=\"");
		for (int i = 0; i < 20 && buf[i]; i++)
			putc(buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '?');
		puts("\"\n");
	}

	st = request(b, T_IN, 0, 512, 1);
	report("read sector 0", st);
	if (st < 0)
		finish(EXIT_TIMEOUT);
	if (st)
		finish(EXIT_READ);
	if (!check_sector0()) {
		puts("testguest: sector 0 pattern mismatch\n");
		finish(EXIT_PATTERN);
	}
	puts("testguest: sector 0 pattern ok\n");

	fill_sector1();
	st = request(b, T_OUT, 1, 512, 0);
	if (st < 0)
		finish(EXIT_TIMEOUT);
	if (ro) {
		if (st == 0) {
			puts("testguest: read-only disk accepted a write\n");
			finish(EXIT_ROWRITE);
		}
		puts("testguest: write sector 1 refused status=");
		putdec((uint32_t)st);
		puts(" (read-only)\n");
		finish(EXIT_PASS);
	}
	report("write sector 1", st);
	if (st)
		finish(EXIT_WRITE);
	if (feat & F_BLK_FLUSH) {
		st = request(b, T_FLUSH, 0, 0, 0);
		report("flush", st);
		if (st < 0)
			finish(EXIT_TIMEOUT);
		if (st)
			finish(EXIT_FLUSH);
	}
	finish(EXIT_PASS);
}
#endif

void __attribute__((noreturn)) guest_main(const struct start_info *si)
{
	puts("testguest: hello from PVH\n");
#ifdef PRINT_ONLY
	(void)si;
	finish(EXIT_PASS);
#else
	const char *c = cmdline(si);
	if (c)
		print_cmdline(c);
	run_disk(c);
#endif
}
