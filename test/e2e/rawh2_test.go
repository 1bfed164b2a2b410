package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawResult is what a raw HTTP/2 gRPC call got back.
type rawResult struct {
	grpcStatus string // from the response headers or trailers; empty if none came
	refused    bool   // RST_STREAM, GOAWAY or the connection closed without an answer
	how        string
}

// rawCall sends one gRPC request with a header value of headerBytes bytes
// over a hand-made HTTP/2 connection from src, ignoring the server's
// advertised header list limit as a hostile client would, and reports what
// came back.
func rawCall(t *testing.T, addr, src string, tlsCfg *tls.Config, method string, headerBytes int) rawResult {
	t.Helper()
	conn, err := tls.DialWithDialer(sourceDialer(src), "tcp", addr, tlsCfg.Clone())
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	require.Equal(t, "h2", conn.ConnectionState().NegotiatedProtocol)
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))

	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "https"}, {":path", method}, {":authority", "127.0.0.1"},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"x-big", strings.Repeat("a", headerBytes)},
	} {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	fr := http2.NewFramer(conn, nil) // writes
	rd := http2.NewFramer(nil, conn) // reads, from another goroutine
	rd.ReadMetaHeaders = hpack.NewDecoder(4096, nil)

	_, err = conn.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	require.NoError(t, fr.WriteSettings())
	// The request is written in the background (the server may stop reading
	// midway) and is the only writer from here on: the server's settings
	// are not acknowledged, which the server tolerates, so no frame can
	// land inside the header block.
	go func() {
		const chunk = 16 << 10
		b := block.Bytes()
		first := b[:min(chunk, len(b))]
		b = b[len(first):]
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndHeaders: len(b) == 0}) != nil {
			return
		}
		for len(b) > 0 {
			part := b[:min(chunk, len(b))]
			b = b[len(part):]
			if fr.WriteContinuation(1, len(b) == 0, part) != nil {
				return
			}
		}
		_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}) // an empty message
	}()

	for {
		f, err := rd.ReadFrame()
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return rawResult{refused: true, how: "connection error " + err.Error()}
			}
			return rawResult{refused: true, how: "connection closed: " + err.Error()}
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				for _, hf := range f.Fields {
					if hf.Name == "grpc-status" {
						return rawResult{grpcStatus: hf.Value, how: "answered"}
					}
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return rawResult{refused: true, how: "RST_STREAM " + f.ErrCode.String()}
			}
		case *http2.GoAwayFrame:
			return rawResult{refused: true, how: "GOAWAY " + f.ErrCode.String()}
		}
	}
}
