package boot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// ntpEpoch is 1900-01-01, where NTP time starts.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// QueryTime asks an NTP server for the time (SNTPv4, RFC 4330) and
// returns it corrected by half the round trip.
func QueryTime(ctx context.Context, server string) (time.Time, error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "123")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return time.Time{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(3 * time.Second)
	}
	_ = c.SetDeadline(deadline)
	req := make([]byte, 48)
	req[0] = 0x23 // LI 0, version 4, mode 3 (client)
	sent := time.Now()
	if _, err := c.Write(req); err != nil {
		return time.Time{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	resp := make([]byte, 48)
	n, err := c.Read(resp)
	if err != nil {
		return time.Time{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	rtt := time.Since(sent)
	return parseReply(resp[:n], rtt)
}

// parseReply reads the transmit timestamp of a server reply.
func parseReply(b []byte, rtt time.Duration) (time.Time, error) {
	if len(b) < 48 {
		return time.Time{}, errors.New("ntp: short reply")
	}
	if mode := b[0] & 7; mode != 4 {
		return time.Time{}, fmt.Errorf("ntp: reply of mode %d, not a server's", mode)
	}
	if b[1] == 0 {
		return time.Time{}, errors.New("ntp: the server is not synchronised (kiss of death)")
	}
	sec := binary.BigEndian.Uint32(b[40:])
	frac := binary.BigEndian.Uint32(b[44:])
	if sec == 0 {
		return time.Time{}, errors.New("ntp: reply without a transmit time")
	}
	// Era 0 ends in 2036; times below 1/1/2000 in era 0 are era 1.
	secs := int64(sec)
	if secs < 3155673600 {
		secs += 1 << 32
	}
	t := ntpEpoch.Add(time.Duration(secs) * time.Second).Add(time.Duration(uint64(frac) * uint64(time.Second) >> 32))
	return t.Add(rtt / 2), nil
}
