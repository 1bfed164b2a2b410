package backupstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
)

// err turns an error of one S3 operation on name ("" for the bucket) into
// what the operator sees: which server, which object, what to do.
func (s *S3) err(ctx context.Context, op, name string, err error) error {
	what := "s3://" + s.cfg.Bucket
	if name != "" {
		what = s.Location(name)
	}
	srv := s.cfg.Endpoint

	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("S3 %s %s: %w", op, what, err)
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code != "" {
		switch resp.Code {
		case minio.NoSuchKey, "NotFound":
			return fmt.Errorf("%w: %s on S3 server %s", ErrNotFound, what, srv)
		case minio.NoSuchBucket:
			return fmt.Errorf("S3 bucket %q does not exist on server %s: create it or fix the bucket name (%s %s)", s.cfg.Bucket, srv, op, what)
		case minio.AccessDenied, "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound":
			return fmt.Errorf("S3 server %s refused access (%s) to %s: check the access key, secret key and the bucket's policy: %w", srv, resp.Code, what, err)
		case "EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "StorageFull", "InsufficientStorage":
			return fmt.Errorf("%w: S3 server %s has no room for %s (%s): %w", ErrFull, srv, what, resp.Code, err)
		}
		if resp.StatusCode == http.StatusForbidden {
			return fmt.Errorf("S3 server %s refused access (%s) to %s: check the access key, secret key and the bucket's policy: %w", srv, resp.Code, what, err)
		}
		return fmt.Errorf("S3 %s %s on server %s: %s: %w", op, what, srv, resp.Code, err)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return unreachable(fmt.Sprintf("S3 server %s unreachable: no answer before the deadline (%s %s)", srv, op, what), err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return unreachable(fmt.Sprintf("S3 server %s unreachable: stopped answering (%s %s): %v", srv, op, what, err), err)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) || errors.As(err, new(*net.OpError)) {
		return unreachable(fmt.Sprintf("S3 server %s unreachable (%s %s): %v", srv, op, what, err), err)
	}
	return fmt.Errorf("S3 %s %s on server %s: %w", op, what, srv, err)
}

// unreachable is an error reading msg that matches ErrUnreachable and cause.
func unreachable(msg string, cause error) error {
	return &kindError{kind: ErrUnreachable, msg: msg, cause: cause}
}

// kindError carries one of the package's sentinel errors without repeating
// its text in the message.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// deadlineConn fails a read or write after timeout of silence. Any progress
// in either direction pushes both deadlines, so a long upload does not
// trip the transport's pending read for the response.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
