/*
 * A long, lossy link between this network namespace and another one, for the bench.
 *
 * Usage (as root): lossy-link NETNS DELAY_MS LOSS MTU [RATE_MBIT]
 *
 * Makes two TUN devices, fbl0 here and fbl1 in the network namespace NETNS (which must exist),
 * and carries every IP packet between them after DELAY_MS milliseconds (each way), dropping each
 * one with probability LOSS: what a kernel's netem qdisc does, where the kernel has none (this
 * one's has no sch_netem). With RATE_MBIT (megabits per second, each way; 0 or absent: no limit)
 * each packet also waits its turn to be sent at that rate, behind a buffer of BUFFER_MS of
 * sending time, and a packet that finds that buffer full is dropped: a bottleneck router's
 * tail drop, as netem's `rate` with a tbf or pfifo limit would do. Real TCP runs over it: its
 * congestion control sees real loss, a real round trip and a real bottleneck. In C because it
 * must carry a few hundred MB/s on a core that the transfer measured also needs (a Python loop
 * of the same took most of a core for 70 MB/s). Prints "ready" once both devices exist (the
 * caller gives them addresses and brings them up) and runs until its standard input closes or
 * it is killed; the devices go with it.
 *
 * Built by the bench (bench/lib/lossy-link.ts) with the machine's cc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Packets in flight per direction: a bandwidth-delay product of 1 GB/s x 25 ms in 1500-byte packets. */
#define QUEUE_PACKETS 16384
/* With a rate: the bottleneck's buffer, in milliseconds of sending at that rate (a common router size). */
#define BUFFER_MS 25

struct packet {
  uint64_t due_ns;
  uint32_t length;
  unsigned char *bytes;
};

struct queue {
  struct packet slots[QUEUE_PACKETS];
  unsigned head, count;
  /* With a rate: when the bottleneck has sent the last packet taken (so packets leave in order). */
  uint64_t free_ns;
};

/* The link's shape, each way. */
struct shape {
  double loss;
  uint64_t delay_ns;
  /* Nanoseconds to send one byte at the rate; 0: no rate limit. */
  double ns_per_byte;
  uint64_t buffer_ns;
};

static void die(const char *what) {
  fprintf(stderr, "lossy-link: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
  if (fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die(name);
  return fd;
}

/* A TUN device made inside another network namespace (the descriptor works from here). */
static int open_tun_in(const char *netns, const char *name) {
  char path[256];
  snprintf(path, sizeof path, "/var/run/netns/%s", netns);
  int own = open("/proc/self/ns/net", O_RDONLY);
  int target = open(path, O_RDONLY);
  if (own < 0 || target < 0) die(path);
  if (setns(target, CLONE_NEWNET) < 0) die("setns into the namespace");
  int fd = open_tun(name);
  if (setns(own, CLONE_NEWNET) < 0) die("setns back");
  close(own);
  close(target);
  return fd;
}

/*
 * Reads every packet waiting on `from`; each one survives with probability 1 - loss, waits for
 * the bottleneck (if there is a rate) and is due `delay_ns` after it is sent.
 */
static void take(int from, struct queue *into, const struct shape *shape, size_t max_packet, unsigned char *scratch) {
  for (;;) {
    if (into->count == QUEUE_PACKETS) {
      /* The queue is full: read and drop, as a router with no buffer left would. */
      if (read(from, scratch, max_packet) < 0) return;
      continue;
    }
    struct packet *slot = &into->slots[(into->head + into->count) % QUEUE_PACKETS];
    ssize_t got = read(from, slot->bytes, max_packet);
    if (got < 0) return; /* EAGAIN: nothing more for now */
    if (drand48() < shape->loss) continue;
    uint64_t sent_ns = now_ns();
    if (shape->ns_per_byte > 0) {
      uint64_t start_ns = into->free_ns > sent_ns ? into->free_ns : sent_ns;
      if (start_ns - sent_ns > shape->buffer_ns) continue; /* the bottleneck's buffer is full: tail drop */
      into->free_ns = start_ns + (uint64_t)(shape->ns_per_byte * (double)got);
      sent_ns = into->free_ns;
    }
    slot->length = (uint32_t)got;
    slot->due_ns = sent_ns + shape->delay_ns;
    into->count += 1;
  }
}

/* Writes out the packets that are due; returns the nanoseconds until the next one (or -1 if none waits). */
static int64_t deliver(int to, struct queue *queue) {
  uint64_t now = now_ns();
  while (queue->count > 0) {
    struct packet *slot = &queue->slots[queue->head];
    if (slot->due_ns > now) return (int64_t)(slot->due_ns - now);
    /* A device that cannot take it now drops it, as a full interface queue would. */
    (void)!write(to, slot->bytes, slot->length);
    queue->head = (queue->head + 1) % QUEUE_PACKETS;
    queue->count -= 1;
  }
  return -1;
}

static struct queue *new_queue(size_t max_packet) {
  struct queue *queue = calloc(1, sizeof *queue);
  if (!queue) die("calloc");
  for (unsigned i = 0; i < QUEUE_PACKETS; i += 1) {
    queue->slots[i].bytes = malloc(max_packet);
    if (!queue->slots[i].bytes) die("malloc");
  }
  return queue;
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: lossy-link NETNS DELAY_MS LOSS MTU [RATE_MBIT]\n");
    return 2;
  }
  const char *netns = argv[1];
  double rate_mbit = argc == 6 ? atof(argv[5]) : 0;
  struct shape shape = {
      .loss = atof(argv[3]),
      .delay_ns = (uint64_t)(atof(argv[2]) * 1e6),
      .ns_per_byte = rate_mbit > 0 ? 8e3 / rate_mbit : 0,
      .buffer_ns = (uint64_t)BUFFER_MS * 1000000u,
  };
  /* The devices carry packets of at most the MTU (no offloads asked for); a little room over it. */
  size_t max_packet = (size_t)atoi(argv[4]) + 64;
  unsigned char *scratch = malloc(max_packet);
  if (!scratch) die("malloc");
  srand48((long)now_ns());
  int here = open_tun("fbl0");
  int there = open_tun_in(netns, "fbl1");
  struct queue *to_there = new_queue(max_packet), *to_here = new_queue(max_packet);
  printf("ready\n");
  fflush(stdout);
  struct pollfd fds[3] = {{here, POLLIN, 0}, {there, POLLIN, 0}, {0, POLLIN, 0}};
  for (;;) {
    int64_t a = deliver(there, to_there), b = deliver(here, to_here);
    int64_t wait_ns = a < 0 ? b : b < 0 ? a : (a < b ? a : b);
    struct timespec wait = {wait_ns / 1000000000, wait_ns % 1000000000};
    if (ppoll(fds, 3, wait_ns < 0 ? NULL : &wait, NULL) < 0 && errno != EINTR) die("ppoll");
    if (fds[2].revents) {
      char byte;
      if (read(0, &byte, 1) <= 0) return 0;
    }
    if (fds[0].revents & POLLIN) take(here, to_there, &shape, max_packet, scratch);
    if (fds[1].revents & POLLIN) take(there, to_here, &shape, max_packet, scratch);
  }
}
