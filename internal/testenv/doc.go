// Package testenv is how a test asks for a capability: root, /dev/kvm, loop devices,
// tun, a binary, the nested lab. Without it a test skips with a reason, except under CI
// (CI=true), where a missing capability fails the test: CI machines have them all.
package testenv
