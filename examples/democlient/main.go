// Command democlient walks a scripted client through idemkit's contract
// against an example service and prints every exchange like curl -i:
// new → replay → 422 → 409 → 400 → 413, then a 500 that a retry runs again.
//
// With -server it starts the service binary itself on a free loopback port
// (with -store memory unless -store says otherwise) and stops it with
// SIGTERM at the end; with -url it talks to a running service. It exits
// non-zero if any answer is not the one the contract promises.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	server := flag.String("server", "", "service binary to start (e.g. bin/chi)")
	store := flag.String("store", "memory", "store for the started service")
	base := flag.String("url", "", "base URL of a running service (instead of -server)")
	flag.Parse()

	if *server != "" {
		url, stop, err := start(*server, *store)
		if err != nil {
			fmt.Fprintln(os.Stderr, "democlient:", err)
			os.Exit(1)
		}
		defer stop()
		*base = url
	}
	if *base == "" {
		fmt.Fprintln(os.Stderr, "democlient: need -server or -url")
		os.Exit(2)
	}
	d := &demo{base: strings.TrimRight(*base, "/"), client: &http.Client{Timeout: 30 * time.Second}}
	d.run()
	if d.failures > 0 {
		fmt.Printf("\n%d step(s) did not answer as the contract says\n", d.failures)
		os.Exit(1)
	}
	fmt.Println("\nall steps answered as the contract says")
}

type demo struct {
	base     string
	client   *http.Client
	failures int
}

func (d *demo) run() {
	key := `"` + newUUID() + `"`
	payment := []byte(`{"amount": 1200, "currency": "EUR"}`)
	hdr := map[string]string{"Idempotency-Key": key, "X-Api-Key": "demo-client", "Content-Type": "application/json"}

	d.step("1. A new key runs the handler once (201)", "POST", "/payments", hdr, payment, 201)
	d.step("2. A retry with the same key and payload is replayed byte for byte (Idempotency-Replayed: true)", "POST", "/payments", hdr, payment, 201)
	d.step("3. The same key with another payload is refused (422)", "POST", "/payments", hdr, []byte(`{"amount": 9900, "currency": "EUR"}`), 422)

	slow := with(hdr, "Idempotency-Key", `"`+newUUID()+`"`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.quiet("POST", "/payments?delay_ms=1500", slow, payment)
	}()
	time.Sleep(300 * time.Millisecond)
	d.step("4. A duplicate while the first is still running gets 409 with Retry-After (the first sleeps 1.5 s)", "POST", "/payments?delay_ms=1500", slow, payment, 409)
	<-done

	d.step("5. A malformed key is refused (400)", "POST", "/payments", with(hdr, "Idempotency-Key", `"unterminated`), payment, 400)
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	d.step("6. A body over 1 MiB is refused before the handler (413)", "POST", "/payments", with(hdr, "Idempotency-Key", `"`+newUUID()+`"`), big, 413)

	failing := with(hdr, "Idempotency-Key", `"`+newUUID()+`"`)
	d.step("7. A 5xx is not stored...", "POST", "/payments?fail=1", failing, payment, 500)
	d.step("8. ...so a retry of it runs the handler again (500 again, not a replay)", "POST", "/payments?fail=1", failing, payment, 500)
	d.step("9. Executions so far: steps 1, 4, 7 and 8 ran the handler", "GET", "/stats", nil, nil, 200)
}

func with(h map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(h))
	for a, b := range h {
		out[a] = b
	}
	out[k] = v
	return out
}

func (d *demo) step(title, method, path string, hdr map[string]string, body []byte, want int) {
	fmt.Printf("\n### %s\n", title)
	req, err := http.NewRequest(method, d.base+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	fmt.Printf("> %s %s HTTP/1.1\n", method, path)
	printHeader(">", req.Header)
	fmt.Println(">")
	if len(body) > 0 {
		fmt.Println(summarize(body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		fmt.Printf("request failed: %v\n", err)
		d.failures++
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	fmt.Printf("\n< %s %s\n", resp.Proto, resp.Status)
	printHeader("<", resp.Header)
	fmt.Println("<")
	if len(rb) > 0 {
		fmt.Println(summarize(rb))
	}
	if resp.StatusCode != want {
		fmt.Printf("!! got %d, want %d\n", resp.StatusCode, want)
		d.failures++
	}
}

func (d *demo) quiet(method, path string, hdr map[string]string, body []byte) {
	req, _ := http.NewRequest(method, d.base+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if resp, err := d.client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func printHeader(prefix string, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			fmt.Printf("%s %s: %s\n", prefix, k, v)
		}
	}
}

func summarize(b []byte) string {
	if len(b) > 512 {
		return fmt.Sprintf("[%d bytes: %q…]", len(b), b[:32])
	}
	return strings.TrimRight(string(b), "\n")
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// start runs the service binary on a free loopback port and waits for its
// /healthz.
func start(bin, store string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-addr", addr, "-store", store)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return "", nil, fmt.Errorf("%s exited early: %v\n%s", bin, err, logs.String())
		default:
		}
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Printf("started %s -addr %s -store %s\n", bin, addr, store)
				return url, stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("%s did not become healthy within 20s\n%s", bin, logs.String())
}
