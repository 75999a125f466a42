#!/usr/bin/perl
# Lowers this VM's kernel.pid_max to LOW (argument) and runs bash's classic
# fork loop (`while :; do sleep 600 & done`) until the kernel refuses a fork:
# bash prints "fork: retry: Resource temporarily unavailable". Then perl's
# own fork must fail with EAGAIN too. pid_max is restored before the loop's
# processes are killed. Perl, not bash, watches: once PIDs are exhausted a
# shell could not fork a grep.
use strict;
use warnings;
use POSIX ();

my $low = shift // 500;
my $file = '/proc/sys/kernel/pid_max';

sub rd {
	open(my $fh, '<', $file) or die "$file: $!";
	my $v = <$fh>;
	close $fh;
	chomp $v;
	return $v;
}

sub wr {
	my ($v) = @_;
	open(my $fh, '>', $file) or die "$file: $!";
	print $fh "$v\n" or die "$file: $!";
	close $fh or die "$file: $!";
}

sub tasks {
	my $n = 0;
	opendir(my $d, '/proc') or return -1;
	for my $p (grep { /^\d+$/ } readdir $d) {
		opendir(my $t, "/proc/$p/task") or next;
		$n += grep { /^\d+$/ } readdir $t;
		closedir $t;
	}
	closedir $d;
	return $n;
}

# Processes in process group $pg (the bash loop and its sleeps).
sub group_size {
	my ($pg) = @_;
	my $n = 0;
	opendir(my $d, '/proc') or return -1;
	for my $p (grep { /^\d+$/ } readdir $d) {
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $s = <$fh>;
		close $fh;
		next unless defined $s && $s =~ /\)\s+\S+\s+\d+\s+(\d+)/;
		$n++ if $1 == $pg;
	}
	closedir $d;
	return $n;
}

my $orig = rd();
print "pid_max_orig=$orig\ntasks_before=", tasks(), "\n";
pipe(my $err_r, my $err_w) or die "pipe: $!";
wr($low);
print "pid_max_low=", rd(), "\n";
my $bash = fork() // die "fork before the loop: $!";
if ($bash == 0) {
	close $err_r;
	setpgrp(0, 0);
	open(STDERR, '>&', $err_w) or POSIX::_exit(126);
	exec('/bin/bash', '-c', 'while :; do sleep 600 & done') or POSIX::_exit(127);
}
close $err_w;

# bash's first complaint, within 120 s (forks are slow under TCG).
my $line = '';
my $rin = '';
vec($rin, fileno($err_r), 1) = 1;
if (select(my $rout = $rin, undef, undef, 120) > 0) {
	$line = <$err_r> // '';
	chomp $line;
}
my $tasks_full = tasks();
# Perl forks until refused three times. A PID freed in the meantime (udev's
# idle workers exit after boot) goes to one of these children, which stay
# zombies, holding their PIDs, until the end.
my ($refused, $eagain, $errtext, @extra) = (0, 0, '');
for (1 .. 200) {
	last if $refused >= 3;
	my $pid = fork();
	if (!defined $pid) {
		$refused++;
		$eagain++ if $!{EAGAIN};
		$errtext = "$!";
		next;
	}
	POSIX::_exit(0) if $pid == 0;
	push @extra, $pid;
}
my $loop = group_size($bash);
wr($orig);
kill 'KILL', -$bash;
waitpid($bash, 0);
waitpid($_, 0) for @extra;
print "bash_stderr=$line\n";
print "loop_processes=$loop\ntasks_full=$tasks_full\n";
print "perl_forked=", scalar(@extra), "\nperl_refused=$refused\nperl_eagain=$eagain\nperl_error=$errtext\n";
print "pid_max_restored=", rd(), "\n";
