package sqs

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crewgo/crew/queue/queueurl"
)

// Open returns the queue that rawURL names, with a client from the default
// AWS configuration (environment, shared files, then instance roles). The
// URL is the queue's URL with the scheme sqs (https) or sqs+http (a local
// endpoint, such as an emulator):
//
//	sqs://sqs.eu-west-1.amazonaws.com/123456789012/emails
//	sqs+http://127.0.0.1:9324/000000000000/emails?region=us-east-1
//
// The region is the parameter region, else the configuration's (such as
// AWS_REGION), else the one in an amazonaws.com host name. The parameter
// dlq sets the dead-letter queue's URL (see DeadLetterQueue). Any other
// parameter, a parameter given twice, a malformed query or a fragment is an
// error (package queueurl reads the query, as for every crew backend). Open checks that the queue exists, and never
// creates one; the error for a queue that does not exist, or for
// credentials SQS refuses, wraps crew.ErrPermanent.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Queue, error) {
	queueURL, endpoint, params, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var loadOpts []func(*config.LoadOptions) error
	if r := params["region"]; r != "" {
		loadOpts = append(loadOpts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("sqs: load the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = regionOfHost(endpoint)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("sqs: no region for %s: add ?region=, or set AWS_REGION", rawURL)
	}
	client := awssqs.NewFromConfig(cfg, func(o *awssqs.Options) {
		if !strings.HasSuffix(hostOf(endpoint), ".amazonaws.com") {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	if d := params["dlq"]; d != "" {
		opts = append([]Option{DeadLetterQueue(d)}, opts...)
	}
	q := New(client, queueURL, opts...)
	if _, err := q.counts(ctx, q.url); err != nil {
		return nil, err
	}
	return q, nil
}

// parseURL splits an sqs:// or sqs+http:// URL into the queue's URL, the
// endpoint, and the parameters.
func parseURL(rawURL string) (queueURL, endpoint string, params map[string]string, err error) {
	base, params, err := queueurl.Parse(rawURL, []string{"dlq", "region"})
	if err != nil {
		return "", "", nil, fmt.Errorf("sqs: URL %q: %w", rawURL, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", "", nil, fmt.Errorf("sqs: %w", err)
	}
	scheme := map[string]string{"sqs": "https", "sqs+https": "https", "sqs+http": "http"}[u.Scheme]
	if scheme == "" {
		return "", "", nil, fmt.Errorf("sqs: URL %q: want the scheme sqs or sqs+http", rawURL)
	}
	path := strings.Trim(u.Path, "/")
	if u.Host == "" || strings.Count(path, "/") != 1 || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
		return "", "", nil, fmt.Errorf("sqs: URL %q: want sqs://HOST/ACCOUNT/QUEUE", rawURL)
	}
	if u.User != nil {
		return "", "", nil, fmt.Errorf("sqs: URL %q: a queue URL has no user", rawURL)
	}
	endpoint = scheme + "://" + u.Host
	return endpoint + "/" + path, endpoint, params, nil
}

func hostOf(endpoint string) string {
	_, host, _ := strings.Cut(endpoint, "://")
	h, _, _ := strings.Cut(host, ":")
	return h
}

// regionOfHost reads the region from an SQS host name:
// sqs.REGION.amazonaws.com, or the legacy REGION.queue.amazonaws.com.
func regionOfHost(endpoint string) string {
	parts := strings.Split(hostOf(endpoint), ".")
	switch {
	case len(parts) >= 4 && parts[0] == "sqs" && parts[2] == "amazonaws":
		return parts[1]
	case len(parts) >= 4 && parts[1] == "queue" && parts[2] == "amazonaws":
		return parts[0]
	}
	return ""
}
