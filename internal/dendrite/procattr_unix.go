//go:build unix && !linux

package dendrite

import "syscall"

// procAttr puts dendrite in its own process group, so Stop can signal the
// whole group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
