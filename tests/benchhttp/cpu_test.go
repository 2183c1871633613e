package main

import "testing"

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (postgres: a (b) c) S 4200 4242 4242 0 -1 4194560 1234 0 0 0 321 123 45 67 20 0 1 0 100 0 0\n"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.state != "S" || st.ppid != 4200 || st.utime != 321 || st.stime != 123 || st.cutime != 45 || st.cstime != 67 {
		t.Errorf("parsed %+v", st)
	}
	if _, err := parseStat("4242 (x) S 1 2"); err == nil {
		t.Error("a short line parsed without error")
	}
}

func TestParseMachineTicks(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, err := parseMachineTicks("cpu  100 2 30 400 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if busy != 100+2+30+6+7+8 || total != 100+2+30+400+5+6+7+8 {
		t.Errorf("busy %d total %d", busy, total)
	}
}

func TestCPUUseOther(t *testing.T) {
	u := cpuUse{server: 1, postgres: 2, loadgen: 0.5, busy: 4}
	if u.other() != 0.5 {
		t.Errorf("other = %v, want 0.5", u.other())
	}
	u.busy = 3 // counters read a moment apart can disagree: never negative
	if u.other() != 0 {
		t.Errorf("other = %v, want 0", u.other())
	}
}
