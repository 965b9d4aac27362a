import{j as t,t as e}from"./index-Cv6UrtkA.js";function r(){return t.jsx("p",{className:"text-muted-foreground",children:e("notFound")})}export{r as default};
