package bgp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"syscall"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Reasons a session is not established or went down: the values of the
// reason label of baremetal_announcer_bgp_session_failures_total.
const (
	// ReasonConnectionRefused: the router answered our SYN with a reset;
	// nothing listens on its BGP port for us, or it refuses this node.
	ReasonConnectionRefused = "connection_refused"
	// ReasonPasswordMismatch: a TCP MD5 password is set, and the router,
	// although it answers ARP/NDP, never answers our connection attempts.
	// That is how a wrong password looks: RFC 2385 has the receiver drop
	// segments whose signature does not match, without a word.
	ReasonPasswordMismatch = "password_mismatch"
	// ReasonNoAnswer: no password is set and the router answers ARP/NDP
	// but not our SYNs: it may require a password, or a firewall drops
	// port 179.
	ReasonNoAnswer = "no_answer"
	// ReasonConnectTimeout: no answer at all, not even ARP/NDP (or the
	// router is not on the node's link and its gateway does not answer).
	ReasonConnectTimeout = "connect_timeout"
	// ReasonUnreachable: the node has no route to the router.
	ReasonUnreachable = "unreachable"
	// ReasonConnectError: any other error connecting.
	ReasonConnectError = "connect_error"
	// ReasonMyASNRejected: the router refused our OPEN with "bad peer AS":
	// it expects this node to have another AS number than my-asn.
	ReasonMyASNRejected = "my_asn_rejected"
	// ReasonPeerASNMismatch: the router's OPEN carries another AS number
	// than peer-asn, and we refused it.
	ReasonPeerASNMismatch = "peer_asn_mismatch"
	// ReasonOpenRejected: the router refused our OPEN for another reason
	// (router ID, hold time, capabilities).
	ReasonOpenRejected = "open_rejected"
	// ReasonHoldTimerExpired: no keepalive within the hold time.
	ReasonHoldTimerExpired = "hold_timer_expired"
	// ReasonPeerShutdown: the router closed the session on purpose (a BGP
	// Cease: shutdown, reset, deconfiguration, too many prefixes).
	ReasonPeerShutdown = "peer_shutdown"
	// ReasonConnectionClosed: the TCP connection broke without a BGP
	// notification (the router restarted or crashed).
	ReasonConnectionClosed = "connection_closed"
	// ReasonNotificationReceived and ReasonNotificationSent: other BGP
	// errors; the log has the code.
	ReasonNotificationReceived = "notification_received"
	ReasonNotificationSent     = "notification_sent"
	// ReasonOther: anything else GoBGP reports.
	ReasonOther = "other"
	// ReasonBFDDown: the peer's BFD session went down (nothing heard for
	// the detection time, or the router said its end went down), and the
	// BGP session was reset at once.
	ReasonBFDDown = "bfd_down"
	// ReasonBFDNoAnswer: the BGP session is up but the router sends no
	// BFD: it runs none for this node, so the session is not protected.
	ReasonBFDNoAnswer = "bfd_no_answer"
	// ReasonBFDError: the BFD session could not be started (its port is
	// taken on the node).
	ReasonBFDError = "bfd_error"
)

// failure is why a session is not up: a reason label and a sentence for
// the log.
type failure struct {
	reason string
	detail string
}

// classifyDial explains an error connecting to a peer. passwordSet says
// whether a TCP MD5 password is configured; neighborAnswers whether the
// peer (or the gateway towards it) answers ARP/NDP.
func classifyDial(err error, peer string, passwordSet, neighborAnswers bool) failure {
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) ||
		(errors.As(err, &ne) && ne.Timeout())
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return failure{ReasonConnectionRefused, fmt.Sprintf("%s refused the TCP connection (reset): BGP is not listening there, or the router is not configured to accept this node", peer)}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		// Also what a router on the way answers when our TTL-1 packets die
		// there: the lab's TestEBGPMultihop sees exactly this.
		return failure{ReasonUnreachable, fmt.Sprintf("no route to %s, or a router on the way answered that it is unreachable (for a router more than one hop away, set ebgp-multihop: without it our packets leave with TTL 1): %v", peer, err)}
	case timeout && passwordSet && neighborAnswers:
		return failure{ReasonPasswordMismatch, fmt.Sprintf("%s answers ARP/NDP but drops our TCP MD5-signed connection attempts: its password for this node is not the one configured (password or password-secret), or it has none; TCP MD5 mismatches are silent by design", peer)}
	case timeout && neighborAnswers:
		return failure{ReasonNoAnswer, fmt.Sprintf("%s answers ARP/NDP but not our TCP connection attempts: it may require a TCP MD5 password (set password or password-secret), or a firewall drops the BGP port", peer)}
	case timeout:
		return failure{ReasonConnectTimeout, fmt.Sprintf("no answer from %s, not even to ARP/NDP: the router is down or not on this node's link (for a router further away, set ebgp-multihop)", peer)}
	}
	return failure{ReasonConnectError, fmt.Sprintf("connecting to %s: %v", peer, err)}
}

// classifyNotification explains a BGP NOTIFICATION that ended or
// refused a session; sent says whether this node sent it. msg is GoBGP's
// text for an error it detected itself ("as number mismatch expected X,
// received Y"), empty for a received notification.
func classifyNotification(sent bool, code, subcode uint8, myASN, peerASN uint32, msg string) failure {
	name := bgp.NewNotificationErrorCode(code, subcode).String()
	if msg != "" {
		name += ": " + msg
	}
	switch {
	case code == bgp.BGP_ERROR_OPEN_MESSAGE_ERROR && subcode == bgp.BGP_ERROR_SUB_BAD_PEER_AS && !sent:
		return failure{ReasonMyASNRejected, fmt.Sprintf("the router refused our AS number %d (my-asn): it expects this node in another AS (%s)", myASN, name)}
	case code == bgp.BGP_ERROR_OPEN_MESSAGE_ERROR && subcode == bgp.BGP_ERROR_SUB_BAD_PEER_AS:
		return failure{ReasonPeerASNMismatch, fmt.Sprintf("the router's AS number is not peer-asn %d (%s)", peerASN, name)}
	case code == bgp.BGP_ERROR_OPEN_MESSAGE_ERROR && !sent:
		return failure{ReasonOpenRejected, "the router refused our OPEN: " + name}
	case code == bgp.BGP_ERROR_HOLD_TIMER_EXPIRED:
		return failure{ReasonHoldTimerExpired, "hold timer expired: " + name}
	case code == bgp.BGP_ERROR_CEASE && !sent:
		return failure{ReasonPeerShutdown, "the router closed the session: " + name}
	case sent:
		return failure{ReasonNotificationSent, "this node sent notification " + name}
	}
	return failure{ReasonNotificationReceived, "the router sent notification " + name}
}

// classifyOpenFailure explains a session that ended during the OPEN
// exchange because of a message from the router that GoBGP does not pass
// on: it closes the connection on any message but the expected one,
// without logging it, and keeps no copy. reason is GoBGP's internal state
// reason, which prints as "invalid-msg" and carries the notification only
// when this node sent one (then "sent notification" explained it
// already).
//
// After the router's OPEN was accepted (OPENCONFIRM), the router's AS is
// peer-asn and its notification can only be about our OPEN, whose one
// usual fault is my-asn; the detail keeps a %d for it.
func classifyOpenFailure(old, next string, reason any) (failure, bool) {
	if next != bgp.BGP_FSM_IDLE.String() || fmt.Sprint(reason) != "invalid-msg" || carriesNotification(reason) {
		return failure{}, false
	}
	switch old {
	case bgp.BGP_FSM_OPENCONFIRM.String():
		return failure{ReasonMyASNRejected, "the router accepted the connection and its own AS is peer-asn, but it refused our OPEN: it expects this node in another AS than my-asn %d (GoBGP does not pass on the router's notification during the OPEN exchange; the router's log says \"bad peer AS\" if so, else it may refuse the router ID)"}, true
	case bgp.BGP_FSM_OPENSENT.String():
		return failure{ReasonOpenRejected, "the router accepted the connection but refused the session before sending its OPEN (GoBGP does not pass on its notification during the OPEN exchange; see the router's log)"}, true
	}
	return failure{}, false
}

// carriesNotification says whether GoBGP's state reason (a pointer to an
// unexported struct) holds a BGP message in its BGPNotification field.
func carriesNotification(reason any) bool {
	v := reflect.ValueOf(reason)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	n := v.Elem().FieldByName("BGPNotification")
	return n.IsValid() && n.Kind() == reflect.Pointer && !n.IsNil()
}

// classifyDown explains GoBGP's reason for a session that was established
// going down, when no notification explained it already.
func classifyDown(reason string) failure {
	switch {
	case reason == "hold-timer-expired":
		return failure{ReasonHoldTimerExpired, "no keepalive from the router within the hold time"}
	case reason == "read-failed" || reason == "write-failed":
		return failure{ReasonConnectionClosed, "the TCP connection to the router broke (" + reason + "): the router restarted, crashed or reset it"}
	case strings.HasPrefix(reason, "notification-received"):
		return failure{ReasonNotificationReceived, "the router sent " + reason}
	case strings.HasPrefix(reason, "notification-sent"):
		return failure{ReasonNotificationSent, "this node sent " + reason}
	}
	return failure{ReasonOther, reason}
}
