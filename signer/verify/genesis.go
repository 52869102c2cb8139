package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"

	"github.com/tailseal/tailseal/signer/record"
)

// The genesis record is a store's seq 1: it names the origin, which every
// checkpoint repeats, and with a sealed K0 it ends epoch 0 as a seal does.

const genesisFile = "genesis.json"

// genesis takes a trusted genesis record.
func (v *verifier) genesis(it *item, h [32]byte) {
	if it.p.seq != 1 {
		v.add(it, it.p.seq, Inserted, "a genesis record after seq 1: a store has one, as its first record")
		return
	}
	d, err := record.ParseGenesis(it.data)
	if err != nil {
		v.add(it, 1, Malformed, err.Error())
		return
	}
	v.genesisAt1 = true
	v.genesisSeg, v.genesisLine = it.seg.Name, it.lineNo
	v.lastSeal = d.NextEpoch
	v.sawEpochs = v.sawEpochs || d.NextEpoch > 0
	v.sum.Origin, v.sum.Genesis = d.Origin, base64.StdEncoding.EncodeToString(h[:])
	if v.opt.Genesis != nil && !bytes.Equal(v.opt.Genesis, it.data) {
		v.sum.Findings = append(v.sum.Findings, Finding{Segment: genesisFile, Seq: 1, Kind: Edited,
			Detail: "the copy of the genesis record differs from the store's seq 1"})
	}
}

// checkGenesis checks the kept copy of a genesis that the store no longer
// holds (retention deleted seq 1), then the checkpoints' origins.
func (v *verifier) checkGenesis() {
	g := v.opt.Genesis
	if !v.sawSeq1 && v.retainedGenesis != "" {
		h := sha256.Sum256(g)
		switch {
		case g == nil:
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: genesisFile, Seq: 1, Kind: Deleted,
				Detail: "retention deleted the genesis record (sha256 " + v.retainedGenesis + ") and its copy is missing: the store's origin and sealed K0 are lost"})
		case base64.StdEncoding.EncodeToString(h[:]) != v.retainedGenesis:
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: genesisFile, Seq: 1, Kind: Edited,
				Detail: "the copy is not the genesis record the retention record names (sha256 " + v.retainedGenesis + ")"})
			g = nil
		}
	}
	if !v.genesisAt1 && g != nil {
		bad := func(kind, detail string) {
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: genesisFile, Seq: 1, Kind: kind, Detail: detail})
		}
		p := parse(g)
		d, err := record.ParseGenesis(g)
		switch {
		case v.sawSeq1:
			bad(Inserted, "the store's seq 1 is not the genesis record its copy shows")
		case !p.ok || p.seq != 1 || err != nil:
			bad(Malformed, "not a genesis record at seq 1")
		case v.keys != nil && (p.epoch != 0 || !(&epochKeys{k0: v.opt.K0}).verifies(&p)):
			bad(BadSignature, "the genesis record's signature does not verify under K0")
		default:
			v.genesisSeg = genesisFile
			h := sha256.Sum256(g)
			v.sum.Origin, v.sum.Genesis = d.Origin, base64.StdEncoding.EncodeToString(h[:])
		}
	}
	want := v.opt.Origin
	if v.sum.Origin != "" && want != "" && v.sum.Origin != want {
		v.sum.Findings = append(v.sum.Findings, Finding{Segment: v.genesisSeg, Line: v.genesisLine, Seq: 1, Kind: WrongOrigin,
			Detail: fmt.Sprintf("the genesis record names origin %q; this store is kept as origin %q's", v.sum.Origin, want)})
	}
	kind, whose := WrongOrigin, "this store is kept as origin %q's"
	if v.sum.Origin != "" {
		want, kind, whose = v.sum.Origin, BadCheckpoint, "this store's genesis names %q"
	}
	if want == "" {
		return
	}
	for _, o := range slices.Sorted(maps.Keys(v.noteOrigins)) {
		if o != want {
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: "checkpoints.jsonl", Line: v.noteOrigins[o], Kind: kind,
				Detail: fmt.Sprintf("the checkpoint names origin %q; "+whose, o, want)})
		}
	}
}
