public class Procs { public static void main(String[] a) throws Exception { for (int i=0;i<1000;i++){ new ProcessBuilder("sleep","30").start(); } } }
