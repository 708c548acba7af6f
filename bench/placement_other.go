//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

type cpuSet [16]uint64

func (s *cpuSet) add(cpu int) { s[cpu/64] |= 1 << (cpu % 64) }
func (s *cpuSet) cpus() []int { return nil }

var errNoAffinity = errors.New("CPU affinity is set on Linux only")

func threadAffinity(int) (cpuSet, error)     { return cpuSet{}, errNoAffinity }
func setProcessAffinity(int, *cpuSet) error  { return errNoAffinity }
func setTreeAffinity(int, *cpuSet) error     { return errNoAffinity }
func startOn(cmd *exec.Cmd, _ *cpuSet) error { return errNoAffinity }
