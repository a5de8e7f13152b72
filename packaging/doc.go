// Package packaging holds what runs guichet as a service: a hardened systemd
// unit (guichet.service) and a container image (Containerfile) around the
// statically linked binary of `make static`. Its tests check both: the unit
// with systemd-analyze, the static binary in an empty root with no libc.
package packaging
