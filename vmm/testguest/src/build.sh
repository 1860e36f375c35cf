#!/usr/bin/env bash
# Builds the hull test guest from the sources in <srcdir> into <outdir>: a freestanding
# 32-bit program with a PVH entry note, as two ELF64 files (the format of a vmlinux):
#   disk.elf   prints, drives a virtio-blk device, checks and writes sectors, exits
#   print.elf  prints its greeting and exits (benchmarks, VMMs without virtio-mmio)
# Needs gcc (-m32 compiles freestanding code without multilib: nothing is linked in),
# ld and objcopy. scripts/testguest and testguest.Build both run this file.
set -euo pipefail
src=$1
out=$2
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

CC=${CC:-gcc}
cflags=(-m32 -march=i686 -Os -std=gnu11 -ffreestanding -fno-builtin -nostdlib -fno-pic
        -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
        -fno-tree-loop-distribute-patterns -mno-sse -mno-mmx -Wall -Wextra -Werror)
ldflags=(-m32 -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-T,"$src/guest.ld"
         -Wl,-z,noexecstack -Wl,-n -Wl,--no-warn-rwx-segments)

"$CC" "${cflags[@]}" -c "$src/entry.S" -o "$tmp/entry.o"
for v in disk print; do
  def=()
  [ "$v" = print ] && def=(-DPRINT_ONLY)
  "$CC" "${cflags[@]}" "${def[@]}" -c "$src/guest.c" -o "$tmp/$v.o"
  "$CC" "${ldflags[@]}" "$tmp/entry.o" "$tmp/$v.o" -o "$tmp/$v.elf32"
  objcopy -O elf64-x86-64 "$tmp/$v.elf32" "$tmp/$v.elf"
  mv -f "$tmp/$v.elf" "$out/$v.elf"
done
