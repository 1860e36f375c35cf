// Package chart draws a bench.Report as a bar chart (PNG and SVG) with gonum plot.
//
// It lives apart from package bench, and is linked only into hull-chart, because gonum
// plot parses its twelve embedded fonts in a package initializer: 4.5 MiB of page faults
// and about 1 ms in every process whose binary contains it, hull's CLI included. It must
// not be imported by cmd/hull or the engine packages.
package chart
