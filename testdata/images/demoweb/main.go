// Command demoweb is the demo app of syncd's example fleet (repo-layout/apps/demoweb): a page
// that shows $DEMO_MESSAGE and whether the secret /run/secrets/$DEMO_SECRET arrived, never
// its value. It is built into a FROM scratch image by scripts/demoweb-image.sh, so tests and
// the demo need no registry.
//
//	demoweb              serve on :$PORT (default 8080)
//	demoweb healthcheck  GET http://127.0.0.1:$PORT/healthz; exit 0 when it answers 200
//	demoweb dump DIR     write DIR's files to stdout as one stream (a pg_dump stand-in);
//	                     DEMO_DUMP_FAIL=1 (or a file DIR/.dump-fails) stops half way, exit 3
//	demoweb restore DIR  replace DIR's files with a stream dump wrote, read from stdin
//	demoweb write FILE   write stdin to FILE (tests change data in a FROM scratch image)
//	demoweb cat FILE     print FILE
//
// DEMO_UNHEALTHY=1 makes /healthz answer 500, to exercise a rollback. DEMO_FAIL_PATH=/ makes
// that path answer 500 while /healthz stays healthy: a release whose container is healthy
// but whose probe fails.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const secretsDir = "/run/secrets"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "healthcheck":
			os.Exit(healthcheck(port))
		case "dump", "restore", "write", "cat":
			if len(os.Args) != 3 {
				fmt.Fprintf(os.Stderr, "usage: demoweb %s PATH\n", os.Args[1])
				os.Exit(2)
			}
			if err := data(os.Args[1], os.Args[2]); err != nil {
				fmt.Fprintf(os.Stderr, "demoweb %s: %v\n", os.Args[1], err)
				os.Exit(3)
			}
			os.Exit(0)
		default:
			fmt.Fprintf(os.Stderr, "usage: demoweb [healthcheck|dump|restore|write|cat]\n")
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, net.JoinHostPort("", port)); err != nil {
		log.Fatal(err)
	}
}

func serve(ctx context.Context, addr string) error {
	srv := &http.Server{Addr: addr, Handler: handler(os.Getenv), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("demoweb: listening on %s", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<title>syncd demo</title>
<h1>{{.Message}}</h1>
<p>host: {{.Host}}</p>
{{if .Secret}}<p>secret {{.Secret}}: {{if .Present}}present{{else}}missing{{end}}</p>{{end}}
`))

func handler(getenv func(string) string) http.Handler {
	mux := http.NewServeMux()
	started := time.Now()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if getenv("DEMO_UNHEALTHY") == "1" {
			http.Error(w, "unhealthy on purpose (DEMO_UNHEALTHY=1)", http.StatusInternalServerError)
			return
		}
		// DEMO_UNHEALTHY_AFTER=3s: healthy at first, then not (a release
		// that breaks once it takes traffic).
		if d, err := time.ParseDuration(getenv("DEMO_UNHEALTHY_AFTER")); err == nil && time.Since(started) > d {
			http.Error(w, "unhealthy on purpose (DEMO_UNHEALTHY_AFTER)", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		msg := getenv("DEMO_MESSAGE")
		if msg == "" {
			msg = "Hello from the syncd demo app"
		}
		host, _ := os.Hostname()
		data := struct {
			Message, Host, Secret string
			Present               bool
		}{Message: msg, Host: host, Secret: getenv("DEMO_SECRET")}
		if data.Secret != "" {
			data.Present = secretPresent(data.Secret)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, data); err != nil {
			log.Printf("demoweb: render: %v", err)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := getenv("DEMO_FAIL_PATH"); p != "" && r.URL.Path == p {
			http.Error(w, "failing on purpose (DEMO_FAIL_PATH)", http.StatusInternalServerError)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// secretPresent reports whether /run/secrets/<name> is a readable regular file. It opens the
// file but never reads it: the page must not depend on, let alone show, the value.
func secretPresent(name string) bool {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return false
	}
	f, err := os.Open(filepath.Join(secretsDir, name))
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}

func healthcheck(port string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz")
	if err != nil {
		fmt.Fprintf(os.Stderr, "demoweb healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "demoweb healthcheck: /healthz answered %s\n", resp.Status)
		return 1
	}
	return 0
}

// data runs the data subcommands. A dump is, per regular file of the
// directory in name order: its relative path, a newline, its size, a
// newline, its bytes.
func data(cmd, path string) error {
	switch cmd {
	case "write":
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, os.Stdin); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case "cat":
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(os.Stdout, f)
		return err
	case "dump":
		_, statErr := os.Stat(filepath.Join(path, ".dump-fails"))
		fail := os.Getenv("DEMO_DUMP_FAIL") == "1" || statErr == nil
		w := bufio.NewWriter(os.Stdout)
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(path, p)
			if rel == ".dump-fails" {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if fail {
				w.Write(b[:len(b)/2])
				w.Flush()
				return errors.New("the database went away half way through the dump")
			}
			fmt.Fprintf(w, "%s\n%d\n", rel, len(b))
			_, err = w.Write(b)
			return err
		})
		if err == nil && fail {
			err = errors.New("the database went away")
		}
		if err != nil {
			return err
		}
		return w.Flush()
	case "restore":
		r := bufio.NewReader(os.Stdin)
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
		for {
			name, err := r.ReadString('\n')
			if err == io.EOF && name == "" {
				return nil
			}
			if err != nil {
				return fmt.Errorf("truncated stream: %w", err)
			}
			var size int64
			if _, err := fmt.Fscanf(r, "%d\n", &size); err != nil {
				return fmt.Errorf("truncated stream: %w", err)
			}
			p := filepath.Join(path, strings.TrimSuffix(name, "\n"))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			n, err := io.CopyN(f, r, size)
			f.Close()
			if err != nil {
				return fmt.Errorf("truncated stream after %d of %d bytes of %s: %w", n, size, name, err)
			}
		}
	}
	return fmt.Errorf("unknown command %s", cmd)
}
