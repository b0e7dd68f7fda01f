// SPDX-License-Identifier: GPL-2.0
/*
 * The original VLAN of an ERSPAN copy, written into its ERSPAN header as
 * vSphere's "Encapsulated Remote Mirroring (L3) Source" does.
 *
 * OVS's ERSPAN encapsulation (types II and III) leaves the header's VLAN
 * field 0 and cannot be told otherwise per packet. So the controller keeps
 * the source port group's 802.1Q tag on the copy's inner frame, and this
 * tc classifier, on the egress of every uplink of a host that sends ERSPAN
 * copies, moves that tag into the header: VLAN field = the tag's VID, COS =
 * its priority, and for type II En = 2 ("originally 802.1Q encapsulated");
 * then it removes the inner tag (the rest of the frame moves up, the tail
 * is cut), shortens the outer IPv4 packet by 4 bytes and fixes its
 * checksum. Copies of untagged ports (VLAN 0) and every other
 * frame pass untouched.
 *
 * It handles the packets OVS builds: an outer Ethernet header with or
 * without one 802.1Q tag, IPv4 without options, GRE with only the sequence
 * number (8 bytes), ERSPAN type II (8 bytes) or type III without the
 * platform subheader (12 bytes), not fragmented. Anything else passes as
 * it came. It cannot tell a host's copies from a guest's own tagged ERSPAN
 * packets leaving by the same uplink (none of the labs has such a guest).
 *
 * Built by clang at bring-up (vlab.operations.erspan), attached with
 * `tc filter ... egress bpf da obj erspan_vlan.o sec tc`.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_8021Q 0x8100
#define ETH_P_IP 0x0800
#define GRE_SEQ_ONLY 0x1000
#define ERSPAN_II 0x88BE
#define ERSPAN_III 0x22EB
#define ETH_HLEN 14
#define IP_HLEN 20
#define GRE_HLEN 8
#define TAG_LEN 4
/* Not ours: the next filter on the hook decides (TC_ACT_OK would end the chain). */
#define PASS TC_ACT_UNSPEC
#define CHUNK 64
#define MAX_CHUNKS 150 /* 9600 bytes: any jumbo frame */

static __always_inline __u16 get16(const __u8 *p) { return ((__u16)p[0] << 8) | p[1]; }

static __always_inline void put16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static __always_inline __u16 ip_checksum(const __u8 *ip)
{
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		if (i != 10)
			sum += get16(ip + i);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* One packet layout, with every offset a constant: l2 = outer Ethernet
 * header length (14 or 18), ehlen = ERSPAN header length (8 or 12). */
static __always_inline int fix(struct __sk_buff *skb, const int l2, const int ehlen, const __u16 gre_proto)
{
	/* Outer headers, ERSPAN header, inner MACs, inner tag. */
	__u8 buf[18 + IP_HLEN + GRE_HLEN + 12 + 16];
	const int ip = l2, gre = l2 + IP_HLEN, erspan = gre + GRE_HLEN, inner = erspan + ehlen;
	const int len = inner + 16;

	if (bpf_skb_load_bytes(skb, 0, buf, len) < 0)
		return PASS;
	if (buf[ip] != 0x45 || buf[ip + 9] != 47)
		return PASS;
	if (get16(buf + ip + 6) & 0x3fff) /* a fragment: its length is the datagram's business */
		return PASS;
	if (get16(buf + gre) != GRE_SEQ_ONLY || get16(buf + gre + 2) != gre_proto)
		return PASS;
	if (ehlen == 12 && (buf[erspan + 11] & 0x01)) /* type III O bit: a subheader follows */
		return PASS;
	if (get16(buf + inner + 12) != ETH_P_8021Q)
		return PASS; /* an untagged port's copy: VLAN 0 is right */

	__u16 tci = get16(buf + inner + 14), vid = tci & 0x0fff;
	__u8 pcp = tci >> 13;

	put16(buf + erspan, (get16(buf + erspan) & 0xf000) | vid);
	if (gre_proto == ERSPAN_II)
		buf[erspan + 2] = (pcp << 5) | (2 << 3) | (buf[erspan + 2] & 0x07);
	else
		buf[erspan + 2] = (pcp << 5) | (buf[erspan + 2] & 0x1f);
	put16(buf + ip + 2, get16(buf + ip + 2) - TAG_LEN);
	put16(buf + ip + 10, ip_checksum(buf + ip));

	if (bpf_skb_store_bytes(skb, 0, buf, inner + 12, 0) < 0)
		return PASS;

	/* The inner tag goes: everything after it moves 4 bytes forward, in
	 * chunks (each chunk is read before the previous one's store reaches
	 * it), and the tail is cut. bpf_skb_adjust_room would do it in one
	 * call but works only on skbs whose protocol is IP, and a packet
	 * socket's (OVS's) are not. */
	__u8 chunk[CHUNK];
	__u32 from = inner + 16, end = skb->len;
	for (int i = 0; i < MAX_CHUNKS && from + CHUNK <= end; i++, from += CHUNK)
		if (bpf_skb_load_bytes(skb, from, chunk, CHUNK) < 0 ||
		    bpf_skb_store_bytes(skb, from - TAG_LEN, chunk, CHUNK, 0) < 0)
			return TC_ACT_SHOT;
	if (from + CHUNK <= end)
		return TC_ACT_SHOT; /* longer than MAX_CHUNKS: half moved, drop it */
	/* The last, short chunk byte by byte: constant sizes for the verifier. */
	for (int i = 0; i < CHUNK - 1 && from < end; i++, from++)
		if (bpf_skb_load_bytes(skb, from, chunk, 1) < 0 ||
		    bpf_skb_store_bytes(skb, from - TAG_LEN, chunk, 1, 0) < 0)
			return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, end - TAG_LEN, 0) < 0)
		return TC_ACT_SHOT; /* half rewritten: drop rather than send garbage */
	return PASS;
}

SEC("tc")
int erspan_vlan(struct __sk_buff *skb)
{
	__u8 eth[4], proto[2];

	if (bpf_skb_load_bytes(skb, 12, eth, sizeof(eth)) < 0)
		return PASS;
	const int tagged = get16(eth) == ETH_P_8021Q;
	if (!tagged && get16(eth) != ETH_P_IP)
		return PASS;
	/* The GRE protocol type, where it is when the IPv4 header has no
	 * options (fix() checks that it has none). */
	if (bpf_skb_load_bytes(skb, ETH_HLEN + tagged * TAG_LEN + IP_HLEN + 2, proto, 2) < 0)
		return PASS;
	switch (get16(proto)) {
	case ERSPAN_II:
		return tagged ? fix(skb, ETH_HLEN + TAG_LEN, 8, ERSPAN_II) : fix(skb, ETH_HLEN, 8, ERSPAN_II);
	case ERSPAN_III:
		return tagged ? fix(skb, ETH_HLEN + TAG_LEN, 12, ERSPAN_III) : fix(skb, ETH_HLEN, 12, ERSPAN_III);
	default:
		return PASS;
	}
}

char LICENSE[] SEC("license") = "GPL";
