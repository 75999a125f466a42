#include <stdio.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
int main(){ for(int i=0;i<100000;i++){ pid_t p=fork(); if(p<0){ int e=errno; fprintf(stderr,"fork failed: %s (errno=%d)\n", strerror(e), e); return 1;} if(p==0){ pause(); _exit(0);} } }
