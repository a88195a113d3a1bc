// Package sqstest runs a real SQS implementation for tests: the emulator
// of the npm package local-aws-sqs, started by Node.js on 127.0.0.1 and
// stopped when the test ends. Tests of crew's SQS queue, of the crew
// command and of the benchmarks share it:
//
//	func TestWorker(t *testing.T) {
//		srv := sqstest.Start(t)
//		url := srv.CreateQueue(t, "jobs")
//		q := sqs.New(srv.Client(), url)
//		...
//	}
//
// The emulator needs Node.js and its package installed once, with npm ci
// in this package's testdata/emulator directory (the project's CI script
// does it). Start fails the test with the command to run when either is
// missing.
//
// The emulator is close to SQS but not identical: it counts a
// ChangeMessageVisibility as a receive in ApproximateReceiveCount, does
// not hold back a FIFO group's later messages, and answers a long poll
// early only once MaxNumberOfMessages messages are ready (so tests should
// use short long polls), and it drops what a long poll would get when the
// client hangs up, where SQS hands it over. Tests should not depend on any
// of these.
package sqstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Account is the AWS account ID in the emulator's queue URLs and ARNs.
const Account = "000000000000"

// Region is the region the emulator's ARNs name and Client signs for.
const Region = "us-east-1"

// Server is one running emulator.
type Server struct {
	// Endpoint is the emulator's base URL, such as http://127.0.0.1:40717.
	Endpoint string
	// Addr is Endpoint's host and port, such as 127.0.0.1:40717.
	Addr string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// Start starts an emulator on a free port of 127.0.0.1 and stops it when tb
// ends. It fails tb, with a message saying how to fix it, when Node.js or
// the emulator's npm package is missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartServer()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("sqstest: %v", err)
		}
	})
	return s
}

// StartServer starts an emulator as Start does, for a caller that is not a
// test (such as a TestMain, or a benchmark shared by several runs). The
// caller must call Stop.
func StartServer() (*Server, error) {
	dir, err := emulatorDir()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("sqstest: the SQS emulator needs Node.js (node) on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "local-aws-sqs")); err != nil {
		return nil, fmt.Errorf("sqstest: the SQS emulator is not installed: run (cd %s && npm ci)", dir)
	}
	cmd := exec.Command(node, "server.js")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	// The emulator exits when its standard input closes: if this process
	// dies, it does not linger.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sqstest: start the SQS emulator: %w", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
		close(port)
		s.done <- cmd.Wait()
	}()
	select {
	case p, ok := <-port:
		if !ok {
			return nil, fmt.Errorf("sqstest: the SQS emulator exited before it served: %v", <-s.done)
		}
		s.Addr = "127.0.0.1:" + p
		s.Endpoint = "http://" + s.Addr
		return s, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf("sqstest: the SQS emulator did not start within 30s")
	}
}

// Stop stops the emulator and waits for it to exit. Every queue and
// message it held is gone.
func (s *Server) Stop() error {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	return nil
}

// emulatorDir is the directory of server.js, next to this file.
func emulatorDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("sqstest: cannot locate the emulator's directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "emulator"), nil
}

// Client returns an SQS client for the emulator, with static credentials.
// Extra options apply after the emulator's, such as one that adds a
// middleware to count requests.
func (s *Server) Client(opts ...func(*sqs.Options)) *sqs.Client {
	base := sqs.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
	return sqs.New(base, opts...)
}

// Env returns the environment variables that make the AWS SDK's default
// configuration (and so a crew command started as a child process) talk to
// the emulator: credentials and region.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// CreateQueue creates a standard queue named name, with a dead-letter queue
// NAME-dlq that it redrives to after maxReceiveCount receives (no
// redrive policy when maxReceiveCount is 0), and returns the queue's URL.
// Queue names must be unique within one Server.
func (s *Server) CreateQueue(tb testing.TB, name string, maxReceiveCount int) string {
	tb.Helper()
	url, err := s.Create(context.Background(), name, maxReceiveCount)
	if err != nil {
		tb.Fatal(err)
	}
	return url
}

// Create is CreateQueue for a caller that is not a test: it returns the
// error instead of failing a test. A name ending in .fifo makes FIFO queues.
func (s *Server) Create(ctx context.Context, name string, maxReceiveCount int) (string, error) {
	fifo := strings.HasSuffix(name, ".fifo")
	base := strings.TrimSuffix(name, ".fifo")
	c := s.Client()
	dlqName := base + "-dlq"
	var dlqAttrs map[string]string
	if fifo {
		dlqName += ".fifo"
		dlqAttrs = map[string]string{"FifoQueue": "true"}
	}
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(dlqName), Attributes: dlqAttrs})
	if err != nil {
		return "", fmt.Errorf("sqstest: create queue %s: %w", dlqName, err)
	}
	attrs := map[string]string{}
	if fifo {
		attrs["FifoQueue"] = "true"
	}
	if maxReceiveCount > 0 {
		got, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       dlq.QueueUrl,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return "", fmt.Errorf("sqstest: read the ARN of %s: %w", dlqName, err)
		}
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = fmt.Sprintf(
			`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`,
			got.Attributes[string(types.QueueAttributeNameQueueArn)], maxReceiveCount)
	}
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", fmt.Errorf("sqstest: create queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}
