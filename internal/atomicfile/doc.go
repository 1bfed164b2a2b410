// Package atomicfile is the one way Forlock writes a file that must be
// either wholly old or wholly new: keys, certificates, configuration, the
// agent's state, backup artifacts, decrypted output. Every writer follows
// the same durability rule:
//
//  1. create a temporary file ".<name>.tmp-<16 hex>" in the destination's
//     directory with O_EXCL and the final mode (umask can only narrow it,
//     and it is set to exactly perm by fchmod before the first byte), so no
//     other user can read it even for an instant and no one else's file is
//     reused;
//  2. write the data, fsync the file, close it;
//  3. rename it over the destination (Write, Create) or hard-link it to the
//     destination, which fails if that exists (WriteNew);
//  4. fsync the directory, so the rename itself is on disk.
//
// What can go wrong, and what the code does:
//   - Disk full, quota, I/O error or cancellation while writing or syncing
//     (steps 1-2): the temporary file is removed and the error returned; the
//     destination was never touched.
//   - A crash before the rename: the destination is the old file, complete.
//     The temporary file may be left behind; its name says it is one
//     (IsTemp) and it never has a looser mode than the destination would.
//   - A crash after the rename but before the directory fsync: after the
//     reboot the directory holds the old file or the new one, each
//     complete, never a truncated one (the data was synced in step 2).
//   - The directory fsync fails: the new file is in place but may not
//     survive a crash; the error is returned so the caller does not report
//     success for something it cannot promise.
//   - Two writers of the same path: each has its own temporary file; the
//     renames are atomic, so the path ends holding one complete version
//     (the last rename wins). With WriteNew the first link wins and the
//     other gets an error wrapping fs.ErrExist.
//
// Directory fsync is what the CA key writer and the log export skipped
// before this package existed; now every writer does it.
package atomicfile
