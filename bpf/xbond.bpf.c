// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xbond XDP program, attached to every slave and to the data-plane side of
 * the upper port. One instance (with its own maps) per interface.
 *
 *  - EtherType 0x8809 (IEEE slow protocols: LACP, Marker) is passed to the
 *    kernel when pass_slow is set (slaves), so the control thread reads it on
 *    an AF_PACKET socket and LACP never depends on the data path.
 *  - When deliver is 0 (e.g. the inactive slave of active-backup), every other
 *    frame is dropped here and counted, except IEEE link-local group frames
 *    (01:80:C2:00:00:0X: LLDP, STP), which go to the slave's own stack as on
 *    an inactive kernel-bond slave.
 *  - Everything else is redirected to the AF_XDP socket of its RX queue; with
 *    no socket on that queue the frame is dropped and counted, so that a bond
 *    slave never leaks frames into the host stack.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_SLOW 0x8809
#define MAX_QUEUES 64

/* Counter indices; keep in step with crates/xbond-xdp/src/bpf.rs. */
enum xbond_counter {
	XB_REDIRECTED = 0,
	XB_PASSED_SLOW = 1,
	XB_DROPPED_INACTIVE = 2,
	XB_DROPPED_NO_SOCKET = 3,
	XB_DROPPED_RUNT = 4,
	XB_COUNTERS = 5,
};

struct xbond_cfg {
	__u32 deliver;   /* 0: drop data frames (inactive slave) */
	__u32 pass_slow; /* 1: pass EtherType 0x8809 to the kernel */
	__u32 tap;       /* 1: ARP and IPv6 NS/NA reach the socket even when
			  * deliver is 0 (the ARP/NS monitor looks at them) */
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xbond_cfg);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XB_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1;
	return action;
}

/* ARP, or an IPv6 neighbour solicitation/advertisement without extension
 * headers (RFC 4861 messages carry none), untagged or behind up to two VLAN
 * tags (the ARP/NS monitor probes targets behind a VLAN device tagged). */
static __always_inline int is_arp_or_nd(struct ethhdr *eth, void *data_end)
{
	struct ipv6hdr *ip6;
	struct icmp6hdr *icmp;
	__be16 proto = eth->h_proto;
	void *l3 = eth + 1;
	int i;

#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (l3 + 4 > data_end)
			return 0;
		proto = *(__be16 *)(l3 + 2);
		l3 += 4;
	}
	if (proto == bpf_htons(ETH_P_ARP))
		return 1;
	if (proto != bpf_htons(ETH_P_IPV6))
		return 0;
	ip6 = l3;
	if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6)
		return 0;
	icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 1) > data_end)
		return 0;
	return icmp->icmp6_type == 135 || icmp->icmp6_type == 136;
}

SEC("xdp.frags")
int xbond_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct xbond_cfg *c;
	__u32 zero = 0;
	__u32 q;

	if ((void *)(eth + 1) > data_end)
		return count(XB_DROPPED_RUNT, XDP_DROP);

	c = bpf_map_lookup_elem(&cfg, &zero);
	if (!c)
		return XDP_PASS;

	/* h_proto is in network byte order. */
	if (c->pass_slow && eth->h_proto == bpf_htons(ETH_P_SLOW))
		return count(XB_PASSED_SLOW, XDP_PASS);

	if (!c->deliver && !(c->tap && is_arp_or_nd(eth, data_end))) {
		/* 01:80:C2:00:00:0X, compared byte by byte. */
		if (eth->h_dest[0] == 0x01 && eth->h_dest[1] == 0x80 &&
		    eth->h_dest[2] == 0xc2 && eth->h_dest[3] == 0x00 &&
		    eth->h_dest[4] == 0x00 && (eth->h_dest[5] & 0xf0) == 0x00)
			return count(XB_PASSED_SLOW, XDP_PASS);
		return count(XB_DROPPED_INACTIVE, XDP_DROP);
	}

	q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &q))
		return count(XB_DROPPED_NO_SOCKET, XDP_DROP);

	count(XB_REDIRECTED, 0);
	return bpf_redirect_map(&xsks, q, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
