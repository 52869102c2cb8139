package agent

import (
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
)

// seals returns the seal records' details, in order.
func seals(t *testing.T, recs []rec) []record.SealDetails {
	t.Helper()
	var out []record.SealDetails
	for _, m := range recs {
		if m.EventType != record.TypeSeal {
			continue
		}
		d, err := record.ParseSeal(m.Line)
		if err != nil {
			t.Fatalf("seal %d: %v", m.Seq, err)
		}
		out = append(out, d)
	}
	return out
}

// Epochs that ended while the agent was down are sealed at start, with one
// seal naming the next epoch; an epoch that ends while it runs is sealed
// once, when it ends.
func TestSealAfterDowntime(t *testing.T) {
	r := newRig(t, "")
	r.start() // the first start begins epoch 0, ending at t0+1h
	r.write(2, 100)
	r.allDurable()
	r.stop()

	r.clk.Advance(3*epochLength + 30*time.Minute) // down: epochs 0, 1, 2 end
	r.start()
	r.write(1, 100)
	r.allDurable()
	recs := r.records(r.a.Store().Durable())
	got := seals(t, recs)
	if len(got) != 1 || got[0].Epoch != 0 || got[0].NextEpoch != 3 {
		t.Fatalf("seals after the downtime %+v, want one from epoch 0 to 3", got)
	}
	if last := recs[len(recs)-1]; last.EventType != "lead_ingested" || last.Epoch != 3 {
		t.Fatalf("new line stored as %s in epoch %d, want an event in epoch 3", last.EventType, last.Epoch)
	}

	r.wait(r.clk.Armed(30*time.Minute), "the epoch timer") // epoch 3 ends at t0+4h
	r.clk.Advance(30 * time.Minute)
	r.wait(r.clk.Armed(epochLength), "the next epoch's timer")
	r.write(1, 100)
	r.allDurable()
	r.stop()
	recs = r.all()
	got = seals(t, recs)
	if len(got) != 2 || got[1].Epoch != 3 || got[1].NextEpoch != 4 {
		t.Fatalf("seals %+v, want a second, single one from epoch 3 to 4", got)
	}
	if last := recs[len(recs)-3]; last.EventType != "lead_ingested" || last.Epoch != 4 { // then the shutdown checkpoint and the clean stop
		t.Errorf("line after the epoch end stored as %s in epoch %d, want an event in epoch 4", last.EventType, last.Epoch)
	}
	r.checkEvents(recs)
}
