#!/usr/bin/perl
# Forks children that wait, ATTEMPTS times (argument), counting refused
# forks; then prints the pids files of its own cgroup while the children
# still hold their tasks, and kills them.
use strict;
use warnings;
use POSIX ();

my $attempts = shift // 100;
my ($forked, $refused, $eagain, @kids) = (0, 0, 0);
for (1 .. $attempts) {
	my $pid = fork();
	if (!defined $pid) {
		$refused++;
		$eagain++ if $!{EAGAIN};
		next;
	}
	if ($pid == 0) {
		sleep 600;
		POSIX::_exit(0);
	}
	$forked++;
	push @kids, $pid;
}

sub slurp {
	my ($f) = @_;
	open(my $fh, '<', $f) or return 'absent';
	local $/;
	my $s = <$fh>;
	close $fh;
	$s =~ s/\n+$//;
	$s =~ s/\n/,/g;
	return $s;
}

open(my $cg, '<', '/proc/self/cgroup') or die "/proc/self/cgroup: $!";
my ($path) = map { m/^0::(.*)$/ ? $1 : () } <$cg>;
close $cg;
my $dir = "/sys/fs/cgroup$path";
print "unit_cgroup=$path\n";
print "unit_forked=$forked\nunit_refused=$refused\nunit_eagain=$eagain\n";
for my $f (qw(pids.max pids.current pids.events pids.events.local)) {
	(my $k = "unit_$f") =~ s/\./_/g;
	print "$k=", slurp("$dir/$f"), "\n";
}
kill 'KILL', @kids;
waitpid($_, 0) for @kids;
