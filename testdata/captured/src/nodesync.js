const cp=require('child_process'); const ps=[];
for (let i=0;i<200;i++){ ps.push(cp.spawn('sleep',['30'])); }
try { cp.execSync('true'); } catch(e) { console.error(String(e)); }
