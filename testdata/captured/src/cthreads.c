#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void *f(void *a){ pause(); return 0; }
int main(){ for(int i=0;i<100000;i++){ pthread_t t; int rc=pthread_create(&t,0,f,0); if(rc){ fprintf(stderr,"pthread_create failed: %s\n", strerror(rc)); fprintf(stderr,"ERROR; return code from pthread_create() is %d\n", rc); return 1;} } }
