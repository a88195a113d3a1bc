// Package pgtest runs a throwaway PostgreSQL server for tests and
// benchmarks, so that code using crew's PostgreSQL queue is tested against
// the real thing rather than a mock.
//
// [Start] initialises a data directory in a new temporary directory,
// starts a server in it that listens on 127.0.0.1 only, on a free port,
// and returns once it accepts connections (about two seconds). Start one
// server per test binary, in TestMain, and give each test a database of its
// own with [Server.NewDatabase], or a schema of its own:
//
//	var srv *pgtest.Server
//
//	func TestMain(m *testing.M) {
//		var err error
//		if srv, err = pgtest.Start(context.Background()); err != nil {
//			log.Fatal(err)
//		}
//		code := m.Run()
//		srv.Stop()
//		os.Exit(code)
//	}
//
// The server binaries are looked for in $PATH, then in the newest
// /usr/lib/postgresql/*/bin (where Debian's postgresql package puts them).
// initdb refuses to run as root; when the tests run as root, the server
// runs as the postgres user. When the environment variable named by
// [EnvURL] is set, Start starts nothing and uses that server instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that, when set to a connection
// URL such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable,
// makes Start use that server instead of starting one. The user must be
// allowed to create databases.
const EnvURL = "CREW_TEST_POSTGRES_URL"

// Server is a PostgreSQL server for tests: one that Start started, or the
// one named by $CREW_TEST_POSTGRES_URL. Its methods are safe for
// concurrent use.
type Server struct {
	url  *url.URL // of the maintenance database
	dir  string   // the temporary directory holding the data and socket; "" for an outside server
	data string
	bin  string
	port int
	run  []string // the command prefix that runs a server binary as its owner

	mu sync.Mutex // serialises Restart and Stop
	n  int        // databases created so far
}

// Start starts a new server, or returns the one named by $CREW_TEST_POSTGRES_URL
// when that is set. It fails if the server binaries cannot be found or the
// server does not start within ctx (or a minute). The server keeps running
// until [Server.Stop], which the caller must call (a crashed test binary
// leaves it running, in a directory under os.TempDir).
func Start(ctx context.Context) (*Server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("pgtest: $%s: %w", EnvURL, err)
		}
		return &Server{url: u}, nil
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s := &Server{bin: bin}
	if err := s.init(ctx); err != nil {
		s.removeDir()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err := s.start(ctx)
		if err == nil {
			return s, nil
		}
		// The free port may have been taken in the meantime; try another.
		if attempt == 3 || ctx.Err() != nil {
			s.removeDir()
			return nil, err
		}
	}
}

// findBin returns the directory holding initdb and pg_ctl.
func findBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first: sort by the version number in the path.
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: no PostgreSQL server binaries (initdb, pg_ctl) in $PATH or /usr/lib/postgresql/*/bin: install PostgreSQL (apt-get install -y postgresql), or set $" + EnvURL)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// init creates the data directory. As root, it belongs to the postgres
// user, who runs every server command.
func (s *Server) init(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "crew-pgtest-")
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.dir, s.data = dir, filepath.Join(dir, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("pgtest: initdb cannot run as root, and there is no postgres user to run it: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		s.run = []string{"runuser", "-u", "postgres", "--"}
	}
	return s.ctl(ctx, "initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
}

// start starts the server on a free port and waits until it accepts
// connections.
func (s *Server) start(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	s.url = &url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return s.ctl(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.data, "-l", filepath.Join(s.dir, "server.log"), "-o", s.serverOptions())
}

// serverOptions are the server's settings: listen on the loopback address
// and a socket in the temporary directory only; otherwise the defaults,
// durability (fsync, synchronous_commit) included.
func (s *Server) serverOptions() string {
	return fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=200", s.port, s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ctl runs a server binary as the data directory's owner.
func (s *Server) ctl(ctx context.Context, name string, args ...string) error {
	argv := append(slices.Clone(s.run), append([]string{filepath.Join(s.bin, name)}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.dir
	// pg_ctl leaves the server running in the background: keep it out of
	// the test's process group, so a ^C to the tests reaches the tests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pgtest: %s: %w\n%s\n%s", name, err, out, lastLines(string(log), 20))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// URL returns the connection URL of the server's maintenance database,
// postgres. Tests should not keep data there: see NewDatabase.
func (s *Server) URL() string { return s.url.String() }

// NewDatabase creates a new, empty database with a name of its own and
// returns its connection URL. The database is left in place: Stop removes
// it with the rest of a server that Start started.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("crew_test_%d_%s", s.n, randomHex(4))
	s.mu.Unlock()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		return "", fmt.Errorf("pgtest: new database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: new database: %w", err)
	}
	u := *s.url
	u.Path = "/" + name
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrNotStarted is returned by Restart for a server that Start did not
// start (one named by $CREW_TEST_POSTGRES_URL).
var ErrNotStarted = errors.New("pgtest: the server was not started by this package")

// Restart stops the server at once, as a crash would (pg_ctl restart -m
// immediate: no checkpoint, connections cut), and starts it again on the
// same port. It returns when the server accepts connections again, having
// replayed its write-ahead log.
func (s *Server) Restart(ctx context.Context) error {
	if s.dir == "" {
		return ErrNotStarted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctl(ctx, "pg_ctl", "restart", "-w", "-t", "60", "-m", "immediate", "-D", s.data, "-l", filepath.Join(s.dir, "server.log"), "-o", s.serverOptions())
}

// Stop stops a server that Start started and removes its directory. For a
// server named by $CREW_TEST_POSTGRES_URL it does nothing. Only the first
// call does anything.
func (s *Server) Stop() error {
	if s.dir == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == "" {
		return nil
	}
	err := s.ctl(context.Background(), "pg_ctl", "stop", "-w", "-m", "fast", "-D", s.data)
	s.removeDir()
	s.data = ""
	return err
}

func (s *Server) removeDir() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}
