import os, subprocess, time
for i in range(100):
    pid=os.fork()
    if pid==0:
        time.sleep(30); os._exit(0)
