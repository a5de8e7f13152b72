package dendrite

import "syscall"

// procAttr puts dendrite in its own process group, so Stop can signal the
// whole group, and has the kernel kill it if the thread that started it dies
// (a test binary killed by a timeout leaves no dendrite behind).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
