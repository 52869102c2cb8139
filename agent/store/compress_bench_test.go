package store_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/parse"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/signer/record"
)

// storedLines is 32 MB of records as the agent stores them (parsed,
// pseudonymized, sourced, chained and signed): what a segment holds.
func storedLines(b *testing.B) []byte {
	b.Helper()
	chain := signer.NewChain(signer.NewStaticKey(bytes.Repeat([]byte{1}, 32)), 0, [32]byte{})
	anon := pii.New(pii.Options{Mode: pii.Hash, Key: bytes.Repeat([]byte{2}, 32), Always: pii.DefaultAlways, Never: pii.DefaultNever})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf, tmp []byte
	var off int64
	for n := 0; len(buf) < 32<<20; n++ {
		line := benchdata.Line(n)
		buf = chain.Begin(buf)
		tmp, _ = parse.Append(tmp[:0], parse.Line{Data: []byte(line), Length: int64(len(line))}, start)
		buf = anon.AppendBody(buf, tmp)
		buf = record.AppendSource(buf, `"audit.log"`, "1:1:0000000000000000", off, int64(len(line))+1)
		buf = chain.Finish(buf)
		off += int64(len(line)) + 1
	}
	return buf
}

// BenchmarkCompression compares, on stored records, the compressor the
// store uses (klauspost's gzip at BestSpeed) with the standard library's
// and with zstd's fastest level, the candidates for a cheaper segment
// compression (issue 17). ratio is uncompressed/compressed.
//
//	go test -run '^$' -bench Compression -benchtime 10x ./agent/store
func BenchmarkCompression(b *testing.B) {
	data := storedLines(b)
	for _, c := range []struct {
		name string
		w    func(io.Writer) io.WriteCloser
	}{
		{"gzip-klauspost-1", func(w io.Writer) io.WriteCloser { z, _ := kgzip.NewWriterLevel(w, kgzip.BestSpeed); return z }},
		{"gzip-stdlib-1", func(w io.Writer) io.WriteCloser { z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed); return z }},
		{"zstd-fastest", func(w io.Writer) io.WriteCloser {
			z, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			return z
		}},
		{"zstd-default", func(w io.Writer) io.WriteCloser {
			z, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
			return z
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				out.Reset()
				z := c.w(&out)
				if _, err := z.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := z.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data))/float64(out.Len()), "ratio")
		})
	}
}

// BenchmarkSegmentCodec times the store's own compression of a rotated
// segment of stored records (members, index and filters included:
// CompressRotated) and its read back whole (ScanSegment), for each
// TAILSEAL_COMPRESSION; ratio is uncompressed/compressed.
//
//	go test -run '^$' -bench SegmentCodec -benchtime 5x ./agent/store
func BenchmarkSegmentCodec(b *testing.B) {
	data := storedLines(b)
	for _, c := range []store.Compression{store.Gzip, store.Zstd} {
		dir := b.TempDir()
		write := func() {
			os.WriteFile(filepath.Join(dir, store.SegmentName(1, store.ActiveExt)), data, 0o600)
			os.WriteFile(filepath.Join(dir, store.SegmentName(1<<40, store.ActiveExt)), nil, 0o600) // the active one
		}
		b.Run(string(c)+"/compress", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				b.StopTimer()
				os.RemoveAll(dir)
				os.MkdirAll(dir, 0o700)
				write()
				b.StartTimer()
				if err := store.CompressRotated(store.Options{Dir: dir, Compression: c}); err != nil {
					b.Fatal(err)
				}
			}
			fi, _ := os.Stat(filepath.Join(dir, store.SegmentName(1, c.Ext())))
			b.ReportMetric(float64(len(data))/float64(fi.Size()), "ratio")
		})
		b.Run(string(c)+"/read", func(b *testing.B) {
			seg := store.Segment{Name: store.SegmentName(1, c.Ext()), First: 1, Compressed: true}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				n := 0
				if err := store.ScanSegment(dir, seg, func(store.Segment, int, []byte) error { n++; return nil }); err != nil || n == 0 {
					b.Fatal(n, err)
				}
			}
		})
	}
}
