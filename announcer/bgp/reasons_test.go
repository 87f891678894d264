package bgp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// timeoutErr is what net.Dialer returns when its Timeout passes.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func dialErr(err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: err}
}

func TestClassifyDial(t *testing.T) {
	tests := []struct {
		desc            string
		err             error
		password        bool
		neighborAnswers bool
		want            string
		mention         string
	}{
		{"reset", dialErr(os.NewSyscallError("connect", syscall.ECONNREFUSED)), false, true, ReasonConnectionRefused, "refused"},
		{"reset, with a password too", dialErr(os.NewSyscallError("connect", syscall.ECONNREFUSED)), true, true, ReasonConnectionRefused, "refused"},
		{"timeout with a password, router answers ARP", dialErr(timeoutErr{}), true, true, ReasonPasswordMismatch, "password"},
		{"context deadline with a password, router answers ARP", fmt.Errorf("dial: %w", context.DeadlineExceeded), true, true, ReasonPasswordMismatch, "password"},
		{"timeout without a password, router answers ARP", dialErr(timeoutErr{}), false, true, ReasonNoAnswer, "may require a TCP MD5 password"},
		{"timeout, router silent", dialErr(timeoutErr{}), true, false, ReasonConnectTimeout, "not even to ARP/NDP"},
		{"ETIMEDOUT counts as a timeout", dialErr(os.NewSyscallError("connect", syscall.ETIMEDOUT)), false, false, ReasonConnectTimeout, "no answer"},
		{"no route", dialErr(os.NewSyscallError("connect", syscall.ENETUNREACH)), false, false, ReasonUnreachable, "no route"},
		{"host unreachable", dialErr(os.NewSyscallError("connect", syscall.EHOSTUNREACH)), true, true, ReasonUnreachable, "no route"},
		{"host unreachable names the multihop fix", dialErr(os.NewSyscallError("connect", syscall.EHOSTUNREACH)), false, false, ReasonUnreachable, "set ebgp-multihop"},
		{"anything else", errors.New("bind: address already in use"), false, false, ReasonConnectError, "address already in use"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := classifyDial(tc.err, "203.0.113.1", tc.password, tc.neighborAnswers)
			if f.reason != tc.want {
				t.Errorf("reason %q, want %q (%s)", f.reason, tc.want, f.detail)
			}
			if !strings.Contains(f.detail, tc.mention) || !strings.Contains(f.detail, "203.0.113.1") {
				t.Errorf("detail %q should name the peer and mention %q", f.detail, tc.mention)
			}
		})
	}
}

func TestClassifyNotification(t *testing.T) {
	tests := []struct {
		desc          string
		sent          bool
		code, subcode uint8
		msg           string
		want          string
		mention       string
	}{
		{"router refuses our AS", false, bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_BAD_PEER_AS, "", ReasonMyASNRejected, "our AS number 64999 (my-asn)"},
		{"router's AS is not peer-asn", true, bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_BAD_PEER_AS, "as number mismatch expected 65000, received 64512", ReasonPeerASNMismatch, "received 64512"},
		{"router refuses our router ID", false, bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER, "", ReasonOpenRejected, "refused our OPEN"},
		{"hold timer, either side", true, bgp.BGP_ERROR_HOLD_TIMER_EXPIRED, 0, "", ReasonHoldTimerExpired, "hold timer"},
		{"router shuts the session down", false, bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, "", ReasonPeerShutdown, "closed the session"},
		{"other received", false, bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, "", ReasonNotificationReceived, "router sent"},
		{"other sent", true, bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, "", ReasonNotificationSent, "this node sent"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := classifyNotification(tc.sent, tc.code, tc.subcode, 64999, 65000, tc.msg)
			if f.reason != tc.want || !strings.Contains(f.detail, tc.mention) {
				t.Errorf("got %q (%s), want %q mentioning %q", f.reason, f.detail, tc.want, tc.mention)
			}
		})
	}
}

func TestClassifyDown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hold-timer-expired", ReasonHoldTimerExpired},
		{"read-failed", ReasonConnectionClosed},
		{"write-failed", ReasonConnectionClosed},
		{"notification-received cease", ReasonNotificationReceived},
		{"notification-sent hold timer expired", ReasonNotificationSent},
		{"graceful-restart", ReasonOther},
	}
	for _, tc := range tests {
		if got := classifyDown(tc.in).reason; got != tc.want {
			t.Errorf("classifyDown(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
