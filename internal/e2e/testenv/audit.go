package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// AgentGroup is the group of the users the tests' agents run as (AgentUser):
// the audit policy records their requests.
const AgentGroup = "pidpressure:agents"

// AgentUser is the user the agent for node runs as.
func AgentUser(node string) string { return "pidpressure:agent:" + node }

// The audit log's name in the cluster's directory, and its policy: every
// request of an agent the tests start, and of the real node's DaemonSet
// (its service account's namespace), at Metadata level once complete;
// nothing else.
const (
	auditLog    = "audit.log"
	auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
    userGroups: ["` + AgentGroup + `", "system:serviceaccounts:pidpressure"]
  - level: None
`
)

// Request is one request the audit log recorded.
type Request struct {
	At       time.Time
	User     string
	Verb     string // the API verb: get, list, watch, create, update, patch, delete
	Resource string // with its subresource: nodes/status
	Name     string
	Code     int // the response's status code
}

// Write reports whether the request changed state.
func (r Request) Write() bool {
	switch r.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// Key is "verb resource", as the budget counts requests.
func (r Request) Key() string { return r.Verb + " " + r.Resource }

// Requests returns the requests of user that the apiserver received in
// [from, to), read from its audit log, in order. A line the log writer
// has half written is skipped, not an error.
func (c *Cluster) Requests(user string, from, to time.Time) ([]Request, error) {
	f, err := os.Open(filepath.Join(c.Dir, auditLog))
	if err != nil {
		return nil, fmt.Errorf("the apiserver's audit log: %w", err)
	}
	defer func() { _ = f.Close() }()
	var out []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev struct {
			Stage    string    `json:"stage"`
			Received time.Time `json:"requestReceivedTimestamp"`
			Verb     string    `json:"verb"`
			User     struct {
				Username string `json:"username"`
			} `json:"user"`
			Object *struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
				Name        string `json:"name"`
			} `json:"objectRef"`
			Status *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Stage != "ResponseComplete" || ev.User.Username != user {
			continue
		}
		if ev.Received.Before(from) || !ev.Received.Before(to) {
			continue
		}
		r := Request{At: ev.Received, User: user, Verb: ev.Verb}
		if ev.Object != nil {
			r.Resource, r.Name = ev.Object.Resource, ev.Object.Name
			if ev.Object.Subresource != "" {
				r.Resource += "/" + ev.Object.Subresource
			}
		}
		if ev.Status != nil {
			r.Code = ev.Status.Code
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Tally counts requests by Key, and says them in a stable order.
type Tally map[string]int

// Count tallies rs.
func Count(rs []Request) Tally {
	t := Tally{}
	for _, r := range rs {
		t[r.Key()]++
	}
	return t
}

// Writes is the number of the tally's writes.
func (t Tally) Writes() int {
	n := 0
	for k, v := range t {
		if (Request{Verb: strings.Fields(k)[0]}).Write() {
			n += v
		}
	}
	return n
}

func (t Tally) String() string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, t[k])
	}
	return b.String()
}
