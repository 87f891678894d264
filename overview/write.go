package overview

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/servicestatus"
)

// SessionNote says where BGP session state is, since no API object holds
// it.
const SessionNote = "BGP session state is not in the Kubernetes API: each announcer logs session changes and exports baremetal_announcer_bgp_session_failures_total on :7472/metrics."

// Write prints o in one screen: pools, Services, BGP peers per node, and
// what could not be read.
func (o *Overview) Write(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "POOL\tPROTOCOL\tSIZE\tUSED\tFREE")
	for _, p := range o.Pools {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", p.Name, p.Protocol, p.Size, p.Used, p.Free())
	}
	if len(o.Pools) == 0 {
		fmt.Fprintln(w, "(none)\t\t\t\t")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	w = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "\nSERVICE\tIP\tPOOL\tPROTOCOL\tANNOUNCED BY")
	for _, s := range o.Services {
		ip := "<pending>"
		if s.IP.IsValid() {
			ip = s.IP.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Service, ip, dash(s.Entry.Pool), dash(s.Entry.Protocol), announcedBy(s))
	}
	if len(o.Services) == 0 {
		fmt.Fprintln(w, "(no LoadBalancer Service)\t\t\t\t")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(o.Nodes) > 0 {
		w = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(w, "\nNODE\tBGP PEERS (configured)\tSESSION")
		for _, n := range o.Nodes {
			fmt.Fprintf(w, "%s\t%s\t%s\n", n.Node, dash(strings.Join(n.Peers, ", ")), "not in the API")
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(out, SessionNote); err != nil {
			return err
		}
	}
	for _, p := range o.Problems {
		if _, err := fmt.Fprintln(out, "warning: "+p); err != nil {
			return err
		}
	}
	return nil
}

// announcedBy is the last column: who, or why nobody.
func announcedBy(s ServiceIP) string {
	e := s.Entry
	switch {
	case s.Note != "":
		return s.Note
	case !e.Announced():
		return fmt.Sprintf("nobody (%s): %s", e.Reason, e.Detail)
	case e.Protocol == servicestatus.BGP:
		return strings.Join(e.Nodes, ", ") + " -> " + strings.Join(e.Peers, ", ")
	case len(e.Interfaces) == 0:
		return strings.Join(e.Nodes, ", ")
	default:
		return strings.Join(e.Nodes, ", ") + " on " + strings.Join(e.Interfaces, ", ")
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
