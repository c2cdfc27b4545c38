package pgenv

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// Sharing coordinates the pgenv invocations that share the private cluster,
// with two flock(2) files in a directory: "pg-setup.lock", held exclusively
// by whoever inspects, starts or stops the cluster, and "pg-users.lock", held
// shared by every invocation using it. So a second `make test` reuses the
// cluster a running `make run` started, and the one that started it stops
// it only once no one else is using it.
type Sharing struct{ setup, users *os.File }

// OpenSharing opens (creating if needed) the lock files in dir, unlocked.
func OpenSharing(dir string) (*Sharing, error) {
	setup, err := os.OpenFile(filepath.Join(dir, "pg-setup.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	users, err := os.OpenFile(filepath.Join(dir, "pg-users.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		setup.Close()
		return nil, err
	}
	return &Sharing{setup, users}, nil
}

// Lock blocks until no other invocation is starting or stopping the cluster,
// and keeps them from doing so.
func (s *Sharing) Lock() error { return flock(s.setup, syscall.LOCK_EX) }

// Join records this invocation as a user of the cluster and lets others
// start using it too. It must follow Lock.
func (s *Sharing) Join() error {
	if err := flock(s.users, syscall.LOCK_SH); err != nil {
		return err
	}
	return flock(s.setup, syscall.LOCK_UN)
}

// Alone takes the setup lock again and reports whether no other invocation
// has joined: then the caller may stop the cluster.
func (s *Sharing) Alone() (bool, error) {
	if err := s.Lock(); err != nil {
		return false, err
	}
	err := flock(s.users, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// Close releases both locks.
func (s *Sharing) Close() error { return errors.Join(s.users.Close(), s.setup.Close()) }

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
